package relay

import (
	"fmt"
	"net/http"
	"os"

	"github.com/keel-relay/keel/internal/htpasswd"
	"github.com/keel-relay/keel/internal/wire/uploadname"
	"github.com/keel-relay/keel/relay/agentuploads"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/nodecerts"
)

// buildUploads builds the handler of agents' uploads: at a relay they are kept in the store
// until delivered upstream; at the root they are handed to the Rudder server through
// agent_uploads.root_dir, and without one the upload paths answer 404 (no handler). The
// upload slots are the shared files' (one pool for every upload), so it comes after
// buildSharedFiles. The htpasswd files are re-read when they change. A root_dir that is not
// a directory stops the start: every upload would fail.
func (s *Server) buildUploads(cfg *config.Config) error {
	root := cfg.Role == config.RoleRoot
	if root && cfg.AgentUploads.RootDir == "" {
		return nil
	}
	if root {
		if fi, err := os.Stat(cfg.AgentUploads.RootDir); err != nil {
			return fmt.Errorf("agent_uploads.root_dir: %w (it is the Rudder server's directory, e.g. /var/rudder)", err)
		} else if !fi.IsDir() {
			return fmt.Errorf("agent_uploads.root_dir: %s is not a directory", cfg.AgentUploads.RootDir)
		}
	}
	log := s.log.With("component", "agent-uploads")
	opts := agentuploads.Options{
		Initial:         htpasswd.NewWatched(cfg.AgentUploads.HTPasswdInitial, log.With("htpasswd", "initial")),
		Accepted:        htpasswd.NewWatched(cfg.AgentUploads.HTPasswd, log.With("htpasswd", "accepted")),
		ClientNode:      nodecerts.NodeID,
		MaxBody:         func() int64 { return int64(s.cfg.Load().HTTP.MaxBody) },
		BodyIdleTimeout: cfg.HTTP.BodyIdleTimeout,
		MinUploadRate:   int64(cfg.HTTP.MinUploadRate),
		Slots:           s.files.Slots(),
		UploadSlotWait:  cfg.HTTP.UploadSlotWait,
		Metrics:         s.reg,
	}
	if root {
		opts.RootDir = cfg.AgentUploads.RootDir
	} else {
		opts.Store, opts.Stored = s.store, s.wakeDelivery
	}
	s.uploads = agentuploads.New(opts, log)
	return nil
}

// uploadRoutes are the routes of agents' uploads (PUT /inventories/, /inventory-updates/,
// /reports/; SPEC-relay-box.md): PUT on "/<kind>/*name" (a name with a '/' is the handler's
// 400, not a 404), and 403 for every other method, as Apache's WebDAV configuration denies
// them. Each kind has its own route label.
func (s *Server) uploadRoutes() []httpapi.Route {
	if s.uploads == nil {
		return nil
	}
	var routes []httpapi.Route
	for _, k := range uploadname.Kinds {
		path, label := "/"+k.Dir()+"/*name", "agent-uploads/"+k.Dir()
		routes = append(routes, httpapi.Route{Method: http.MethodPut, Path: path, Name: label, Handle: s.uploads.Put(k)})
		// "": any other method, odd ones included (httpapi.Route), not httprouter's 405.
		for _, m := range append(agentuploads.DeniedMethods(), "") {
			routes = append(routes, httpapi.Route{Method: m, Path: path, Name: label, Handle: s.uploads.Deny(k)})
		}
	}
	return routes
}
