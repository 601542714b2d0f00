package relay

import (
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/keel-relay/keel/internal/membudget"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/remoterun"
)

// procRoot is where the memory limit is read from (/proc, /sys).
const procRoot = "/"

// MemoryPlan works out the relay's memory budget (memory.limit, the limit the process runs
// under) and how it is split: the settings it returns are cfg's, lowered to fit. warnings say
// what was not as configured or could not be read; they do not stop the relay.
func MemoryPlan(cfg *config.Config) (plan membudget.Plan, warnings []string) {
	return memoryPlan(cfg, procRoot)
}

func memoryPlan(cfg *config.Config, root string) (membudget.Plan, []string) {
	var warnings []string
	detected, err := membudget.ReadLimit(root)
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("memory limit not fully read (%v); going on with %s (%s)",
			err, membudget.FormatBytes(detected.Bytes), detected.Source))
	}
	budget, warning := membudget.Resolve(int64(cfg.Memory.Limit), detected)
	if warning != "" {
		warnings = append(warnings, warning)
	}
	return membudget.Split(budget, memorySettings(cfg)), warnings
}

// memorySettings are the settings of cfg that the budget may lower.
func memorySettings(cfg *config.Config) membudget.Settings {
	s := cfg.Storage
	return membudget.Settings{
		MemTableSize: int64(s.MemTableSize), NumMemtables: s.NumMemtables,
		BlockCacheSize: int64(s.BlockCacheSize), IndexCacheSize: int64(s.IndexCacheSize),
		ValueThreshold: int64(s.ValueThreshold), ChunkSize: int64(s.ChunkSize),
		APIConnections: cfg.HTTP.MaxConnections, UploadSlots: cfg.HTTP.MaxConcurrentUploads, EdgeStreams: cfg.Edge.MaxStreams,
		RemoteRunCalls: cfg.RemoteRun.MaxCalls, RemoteRunOutputLines: remoterun.DefaultOutputLines,
	}
}

// applyGoLimit sets the Go runtime's memory limit to the plan's, unless a lower one is set
// already (GOMEMLIMIT): the budget lowers, never raises. It returns the limit in force.
func applyGoLimit(plan membudget.Plan) int64 {
	current := debug.SetMemoryLimit(-1)
	if plan.GoLimit > 0 && plan.GoLimit < current {
		debug.SetMemoryLimit(plan.GoLimit)
		return plan.GoLimit
	}
	return current
}

// logPlan says the budget and its split in one line.
func logPlan(log *slog.Logger, plan membudget.Plan, goLimit int64) {
	attrs := []any{"budget", membudget.FormatBytes(plan.Bytes), "source", plan.Source, "split", plan.String()}
	if plan.GoLimit > 0 && goLimit != plan.GoLimit {
		attrs = append(attrs, "go_limit_in_force", membudget.FormatBytes(goLimit))
	}
	if len(plan.Lowered) > 0 {
		attrs = append(attrs, "lowered", plan.Lowered)
	}
	log.Info("memory budget", attrs...)
}

// MemoryStatus is the "memory" object of /system/status: the budget, its split, and the
// memory in use.
type MemoryStatus struct {
	LimitBytes   int64       `json:"limit_bytes"` // 0: no limit known
	Source       string      `json:"source"`
	GoLimitBytes int64       `json:"go_limit_bytes"` // the Go runtime's memory limit in force
	NearAtBytes  int64       `json:"near_at_bytes"`  // from here new work is refused; 0: never
	InUseBytes   int64       `json:"in_use_bytes"`   // held by the Go runtime (released pages aside)
	NearLimit    bool        `json:"near_limit"`
	Split        MemorySplit `json:"split"`
}

// MemorySplit is the settings in force after the budget lowered them.
type MemorySplit struct {
	MemTableSize         int64    `json:"mem_table_size"`
	NumMemtables         int      `json:"num_memtables"`
	BlockCacheSize       int64    `json:"block_cache_size"`
	IndexCacheSize       int64    `json:"index_cache_size"`
	MaxConnections       int      `json:"max_connections"`
	MaxConcurrentUploads int      `json:"max_concurrent_uploads"`
	UploadCostBytes      int64    `json:"upload_cost_bytes"`
	EdgeMaxStreams       int      `json:"edge_max_streams"`
	EdgeMaxConnections   int      `json:"edge_max_connections"` // 0: no bound
	RemoteRunMaxCalls    int      `json:"remote_run_max_calls"`
	RemoteRunOutputLines int      `json:"remote_run_output_lines"`
	Lowered              []string `json:"lowered,omitempty"`
}

func (s *Server) memoryStatus() *MemoryStatus {
	p := s.plan
	return &MemoryStatus{
		LimitBytes: p.Bytes, Source: p.Source, GoLimitBytes: debug.SetMemoryLimit(-1), NearAtBytes: p.NearAt,
		InUseBytes: s.gauge.InUse(), NearLimit: s.pressure.Near(),
		Split: MemorySplit{
			MemTableSize: p.MemTableSize, NumMemtables: p.NumMemtables, BlockCacheSize: p.BlockCacheSize,
			IndexCacheSize: p.IndexCacheSize, MaxConnections: p.APIConnections, MaxConcurrentUploads: p.UploadSlots, UploadCostBytes: p.UploadCost,
			EdgeMaxStreams: p.EdgeStreams, EdgeMaxConnections: p.EdgeConnections, RemoteRunMaxCalls: p.RemoteRunCalls, RemoteRunOutputLines: p.RemoteRunOutputLines,
			Lowered: p.Lowered,
		},
	}
}
