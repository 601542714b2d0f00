package relay

import (
	"net/http"
)

// APIHandler returns the relay API listener's handler, so that the external tests can call it
// in process with a peer address of their choosing: a test machine has no non-loopback peer to
// connect from, and the network access checks are about that address.
func (s *Server) APIHandler() http.Handler { return s.api.Handler }

// AdminHandler returns the admin listener's handler (nil when it is disabled).
func (s *Server) AdminHandler() http.Handler {
	if s.admin == nil {
		return nil
	}
	return s.admin.Handler
}

// MemoryPlanAt is MemoryPlan reading /proc and /sys under root (a fake tree).
var MemoryPlanAt = memoryPlan
