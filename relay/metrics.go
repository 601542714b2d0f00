package relay

import (
	"math"
	"runtime"
	"time"

	"github.com/keel-relay/keel/internal/metrics"
)

// daemonMetrics are the daemon-level metrics: the store, the node map, the drain, reloads
// and the build. The request metrics are the relay API's (package httpapi).
type daemonMetrics struct {
	nodeLoads *metrics.CounterVec
	// reloaded is the Unix time of the last reload that applied everything.
	reloaded metrics.Gauge
}

func newDaemonMetrics(reg *metrics.Registry, s *Server) *daemonMetrics {
	m := &daemonMetrics{
		nodeLoads: reg.Counter("keel_node_map_loads_total", "Node map loads by result.", "result").
			Init([]string{"ok", "error"}),
		reloaded: reg.Gauge("keel_last_reload_success_timestamp_seconds",
			"Unix time of the last reload (SIGHUP or POST /reload) that applied everything (0: none since start).").With(),
	}
	reg.GaugeFunc("keel_forward_queue_oldest_age_seconds", "Age of the oldest shared file queued for a next hop (0: the queue is empty; which job is oldest is looked up every 30 s).", func() float64 {
		if s.store.JobCount() == 0 {
			return 0
		}
		q := s.oldestQueued.Load()
		if q == 0 { // the queue was empty at the last refresh: look now
			q = s.refreshOldestQueued()
		}
		if q == 0 {
			return 0
		}
		return max(0, time.Since(time.UnixMilli(q)).Seconds())
	})
	reg.GaugeFunc("keel_store_free_bytes", "Free space in the data directory's file system (NaN: unknown on this platform).", func() float64 {
		sp := s.store.Space()
		if !sp.Known() {
			return math.NaN()
		}
		return float64(sp.Free)
	})
	reg.GaugeFunc("keel_store_reserve_bytes", "Free space the store keeps: below it (with the ballast's missing part) growing writes get 507 (storage.min_free_space).", func() float64 {
		return float64(s.store.Space().Reserve)
	})
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
