package relay

import (
	"context"
	"net/http"
	"time"

	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/delivery"
	"github.com/keel-relay/keel/relay/httpapi"
)

// buildDelivery builds the worker that delivers the agents' uploads kept in the store to the
// upstream (package delivery). Only a relay has one: the root hands uploads over to its
// Rudder server in agent_uploads.root_dir as they come. The credentials follow reloads;
// the rest is read here.
func (s *Server) buildDelivery(cfg *config.Config) {
	if cfg.Role != config.RoleRelay {
		return
	}
	s.delivery = delivery.New(s.store, delivery.Options{
		Upstream: s.hops.Upstream,
		Auth: func() delivery.Auth {
			a := s.cfg.Load().UpstreamAuth
			return delivery.Auth{User: a.User, PasswordFile: a.PasswordFile, DefaultPasswordFile: a.DefaultPasswordFile}
		},
		Nodes:      s.nodes.Current,
		MinBackoff: cfg.Forward.MinBackoff, MaxBackoff: cfg.Forward.MaxBackoff, AttemptTimeout: cfg.Forward.AttemptTimeout,
		Retention: cfg.AgentUploads.Retention,
	}, delivery.NewMetrics(s.reg), s.log.With("component", "delivery"))
}

// runDelivery runs the delivery worker, if there is one, until ctx is done.
func (s *Server) runDelivery(ctx context.Context) {
	if s.delivery != nil {
		s.delivery.Run(ctx)
	}
}

// wakeDelivery tells the delivery worker that an upload was kept (after PutAgentUpload); it
// never blocks, and does nothing at the root.
//
//lint:ignore U1000 the uploads handler (relay/uploads.go, another branch) calls it.
func (s *Server) wakeDelivery() {
	if s.delivery != nil {
		s.delivery.Wake()
	}
}

// agentUploadsStatus is the "agent_uploads" object of /system/status (a relay only).
func (s *Server) agentUploadsStatus() *httpapi.AgentUploadsStatus {
	if s.delivery == nil {
		return nil
	}
	st := s.store.AgentUploadStats()
	out := &httpapi.AgentUploadsStatus{Waiting: st.Waiting, Failed: st.Failed, WaitingBytes: st.WaitingBytes}
	if !st.OldestWaiting.IsZero() {
		out.OldestWaitingSec = max(int64(time.Since(st.OldestWaiting).Seconds()), 0)
	}
	return out
}

// adminRoutes are the routes of the admin listener besides httpapi's own: the operator's
// listing of the kept uploads (`keel-relay uploads`).
func (s *Server) adminRoutes() []httpapi.Route {
	return []httpapi.Route{{Method: http.MethodGet, Path: "/uploads", Name: "admin/uploads",
		Handle: delivery.ListHandler(s.store, s.log.With("component", "delivery"))}}
}
