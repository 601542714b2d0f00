package relay

import "github.com/keel-relay/keel/relay/httpapi"

// downloadRoutes are the routes agents download from: /uuid, the shared folder, /policies/
// and /common/ (SPEC-relay-box.md).
func (s *Server) downloadRoutes() []httpapi.Route { return nil }
