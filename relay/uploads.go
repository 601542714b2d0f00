package relay

import "github.com/keel-relay/keel/relay/httpapi"

// uploadRoutes are the routes of agents' uploads (PUT /inventories/, /inventory-updates/,
// /reports/; SPEC-relay-box.md).
func (s *Server) uploadRoutes() []httpapi.Route { return nil }
