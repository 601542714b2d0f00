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
