package relay

import (
	"net/http"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/relay/httpapi"
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

// WrapLoopback returns h behind the relay's request middleware (loopback only), so that the
// external tests can check what the middleware does for any handler.
func (s *Server) WrapLoopback(route string, h http.HandlerFunc) http.Handler {
	wrapped := s.front.Wrap(route, httpapi.LoopbackOnly, func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) { h(w, r) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { wrapped(w, r, nil) })
}

// MemoryPlanAt is MemoryPlan reading /proc and /sys under root (a fake tree).
var MemoryPlanAt = memoryPlan
