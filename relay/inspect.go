package relay

import (
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/inspect"
)

// inspectRoutes are the admin listener's inspection routes (`keel-relay files|queue|nodes`,
// package inspect), over the store, the node map in force and the config in force.
func (s *Server) inspectRoutes() []httpapi.Route {
	return inspect.Routes(inspect.Options{
		Store:       s.store,
		Nodes:       s.nodes.Current,
		NodesSource: func() string { return s.cfg.Load().NodesFile },
		Root:        func() bool { return s.cfg.Load().Role == config.RoleRoot },
		Upstream:    func() string { return s.cfg.Load().Upstream },
		Wake:        s.worker.Wake,
		Log:         s.log.With("component", "inspect"),
	})
}
