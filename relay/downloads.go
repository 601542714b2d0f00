package relay

import (
	"net/http"

	"github.com/keel-relay/keel/relay/boxfiles"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/nodecerts"
)

// downloadRoutes are the routes agents download from: /uuid, the shared folder, /policies/
// and /common/ (SPEC-relay-box.md), each for GET and HEAD.
func (s *Server) downloadRoutes() []httpapi.Route {
	cfg := s.cfg.Load()
	h := boxfiles.New(boxfiles.Options{
		NodeID:       cfg.NodeID,
		SharedFolder: cfg.SharedFolder.Path,
		Policies:     cfg.Policies.Path,
		Common:       cfg.Policies.CommonPath,
		ClientNode:   nodecerts.NodeID,
		Log:          s.log.With("component", "boxfiles"),
	})
	var routes []httpapi.Route
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		routes = append(routes,
			httpapi.Route{Method: m, Path: "/uuid", Name: "uuid", Handle: h.UUID},
			httpapi.Route{Method: m, Path: "/rudder/relay-api/shared-folder/*path", Name: "shared-folder", Handle: h.SharedFolder},
			httpapi.Route{Method: m, Path: "/rudder/relay-api/1/shared-folder/*path", Name: "shared-folder", Handle: h.SharedFolder},
			httpapi.Route{Method: m, Path: "/policies/:uuid/*path", Name: "policies", Handle: h.Policies},
			httpapi.Route{Method: m, Path: "/common/*path", Name: "common", Handle: h.Common},
		)
	}
	return routes
}
