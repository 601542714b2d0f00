package relay

import (
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/keel-relay/keel/relay/httpapi"
)

// system is the daemon as the system endpoints see it (httpapi.System).
type system struct{ s *Server }

// Status is the /system/status document: 503 while draining or with a full disk.
func (y system) Status() (httpapi.Status, int) {
	s := y.s
	cfg := s.cfg.Load()
	m := s.nodes.Current()
	st := httpapi.Status{
		Status: "ok", Version: s.opts.Build.Version, NodeID: cfg.NodeID, Role: cfg.Role,
		UptimeSec: int64(time.Since(s.started).Seconds()),
		NodeMap:   httpapi.NodeMapStatus{Nodes: m.Len(), Digest: m.Digest()},
		Files:     s.store.FileCount(), QueueDepth: s.store.JobCount(), StoreBytes: s.diskUsage.Load(),
		NodesFile: cfg.NodesFile, Memory: s.memoryStatus(), AgentUploads: s.agentUploadsStatus(),
	}
	if s.edge != nil {
		st.EdgeDaemons = s.edge.Streams()
	}
	if t := s.nodeLoaded.Load(); t != nil {
		st.NodeMap.LoadedAt = t.UTC()
	}
	if e := s.nodeLoadErr.Load(); e != nil {
		st.NodeMap.LastError = *e
	}
	if d := s.nodeKept.Load(); d != nil && *d == m.Digest() && m.Digest() != "" {
		st.NodeMap.Kept = true
	} else if e := s.nodeKeepErr.Load(); e != nil {
		st.NodeMap.KeepError = *e
	}
	sp := s.store.Space()
	if sp.Known() {
		st.Disk = &httpapi.DiskStatus{FreeBytes: sp.Free, NeedBytes: sp.Need, ReserveBytes: sp.Reserve,
			BallastBytes: sp.Ballast, BallastWantBytes: sp.BallastSize, Full: sp.Full()}
	}
	if s.draining.Load() {
		st.Status, st.StatusReason = "draining", "the relay is stopping"
		return st, http.StatusServiceUnavailable
	}
	if sp.Full() {
		// Not healthy: uploads and edge enrolments are refused. Reads go on.
		st.Status, st.StatusReason = "disk_full", sp.Reason()+"; writes are refused, reads go on"
		return st, http.StatusServiceUnavailable
	}
	return st, http.StatusOK
}

// Info is the /system/info document.
func (y system) Info() map[string]any {
	s := y.s
	cfg := s.cfg.Load()
	return map[string]any{
		"name": "keel-relay", "version": s.opts.Build.Version, "commit": s.opts.Build.Commit,
		"build_date": s.opts.Build.Date, "go_version": runtime.Version(),
		"os": runtime.GOOS, "arch": runtime.GOARCH,
		"node_id": cfg.NodeID, "role": cfg.Role, "upstream": cfg.Upstream,
		"api_versions": []int{1}, "features": []string{"shared-files", "remote-run", "system"},
		"started": s.started.UTC(),
	}
}

// Reload re-reads the config and the node map (Server.Reload).
func (y system) Reload() error { return y.s.Reload() }

// Nodes is the number of nodes in the node map in force.
func (y system) Nodes() int { return y.s.nodes.Current().Len() }

// Backup writes an online backup of the store to w.
func (y system) Backup(w io.Writer) error {
	return BackupStore(y.s.store, y.s.cfg.Load().DataDir, w)
}

// memoryStatus is the "memory" object of the status: the budget, its split and the use.
func (s *Server) memoryStatus() *httpapi.MemoryStatus {
	p := s.plan
	return &httpapi.MemoryStatus{
		LimitBytes: p.Bytes, Source: p.Source, GoLimitBytes: debug.SetMemoryLimit(-1), NearAtBytes: p.NearAt,
		InUseBytes: s.gauge.InUse(), NearLimit: s.pressure.Near(),
		Split: httpapi.MemorySplit{
			MemTableSize: p.MemTableSize, NumMemtables: p.NumMemtables, BlockCacheSize: p.BlockCacheSize,
			IndexCacheSize: p.IndexCacheSize, MaxConnections: p.APIConnections, MaxConcurrentUploads: p.UploadSlots, UploadCostBytes: p.UploadCost,
			EdgeMaxStreams: p.EdgeStreams, EdgeMaxConnections: p.EdgeConnections, RemoteRunMaxCalls: p.RemoteRunCalls, RemoteRunOutputLines: p.RemoteRunOutputLines,
			Lowered: p.Lowered,
		},
	}
}
