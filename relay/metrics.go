package relay

import (
	"runtime"

	"github.com/keel-relay/keel/internal/metrics"
)

// daemonMetrics are the daemon-level metrics: the store, the node map, the drain and the
// build. The request metrics are the relay API's (package httpapi).
type daemonMetrics struct {
	nodeLoads *metrics.CounterVec
}

func newDaemonMetrics(reg *metrics.Registry, s *Server) *daemonMetrics {
	m := &daemonMetrics{
		nodeLoads: reg.Counter("keel_node_map_loads_total", "Node map loads by result.", "result"),
	}
	reg.GaugeFunc("keel_shared_files_stored", "Shared files stored for nodes of this relay.", func() float64 { return float64(s.store.FileCount()) })
	reg.GaugeFunc("keel_forward_queue_depth", "Shared files queued for a next hop.", func() float64 { return float64(s.store.JobCount()) })
	reg.GaugeFunc("keel_store_disk_bytes", "Disk space used by the store.", func() float64 { return float64(s.diskUsage.Load()) })
	reg.GaugeFunc("keel_node_map_nodes", "Nodes in the node map in force.", func() float64 { return float64(s.nodes.Current().Len()) })
	// relayd's names (SPEC-relay-box.md "Metrics"), so that Rudder dashboards carry over.
	reg.GaugeFunc("rudder_relayd_managed_nodes_total", "Nodes whose policy server is this relay (relayd's managed nodes).", func() float64 {
		mine, _ := s.nodes.Current().Counts()
		return float64(mine)
	})
	reg.GaugeFunc("rudder_relayd_sub_nodes_total", "Nodes below this relay, directly or through sub-relays (relayd's sub nodes).", func() float64 {
		_, below := s.nodes.Current().Counts()
		return float64(below)
	})
	reg.GaugeFunc("keel_draining", "1 while the relay drains before stopping.", func() float64 {
		if s.draining.Load() {
			return 1
		}
		return 0
	})
	reg.Gauge("keel_build_info", "Build of the running keel-relay.", "version", "commit", "goversion").
		With(s.opts.Build.Version, s.opts.Build.Commit, runtime.Version()).Set(1)
	return m
}
