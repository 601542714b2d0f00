// Package cleaner runs the shared-files TTL cleaner: it deletes expired files, sweeps chunks
// no record references, and then lets the store return the freed disk space.
package cleaner

import (
	"context"
	"log/slog"
	"time"

	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/storage"
)

// Metrics are the cleaner's counters.
type Metrics struct {
	Runs    metrics.Counter
	Expired metrics.Counter
	Errors  metrics.Counter
	// LastSuccess is the Unix time the last run that failed nowhere ended.
	LastSuccess metrics.Gauge
}

// NewMetrics registers the cleaner's metrics in reg.
func NewMetrics(reg *metrics.Registry) *Metrics {
	return &Metrics{
		Runs:    reg.Counter("keel_cleaner_runs_total", "TTL cleaner runs.").With(),
		Expired: reg.Counter("keel_cleaner_expired_files_total", "Shared files removed because their TTL ended.").With(),
		Errors:  reg.Counter("keel_cleaner_errors_total", "TTL cleaner runs that failed.").With(),
		LastSuccess: reg.Gauge("keel_cleaner_last_success_timestamp_seconds",
			"Unix time the last TTL cleaner run without error ended (0: none yet).").With(),
	}
}

// Cleaner removes expired shared files on a schedule.
type Cleaner struct {
	store    *storage.Store
	interval time.Duration
	metrics  *Metrics
	log      *slog.Logger
	now      func() time.Time
}

// New returns a cleaner that runs every interval.
func New(store *storage.Store, interval time.Duration, m *Metrics, log *slog.Logger) *Cleaner {
	return &Cleaner{store: store, interval: interval, metrics: m, log: log, now: time.Now}
}

// Run cleans once at once (to sweep what a crash left behind), then every interval, until
// ctx is done.
func (c *Cleaner) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		c.RunOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Result says what one run did.
type Result struct {
	Expired   int
	Swept     int
	Rewritten int
}

// RunOnce performs one cleaning pass.
func (c *Cleaner) RunOnce(ctx context.Context) Result {
	var res Result
	start := time.Now()
	c.metrics.Runs.Inc()
	var err error
	res.Expired, err = c.store.ExpireFiles(c.now(), 0)
	c.metrics.Expired.Add(float64(res.Expired))
	if err != nil {
		c.fail("expire files", err)
		return res
	}
	res.Swept, err = c.store.SweepOrphans(ctx)
	if err != nil && ctx.Err() == nil {
		c.fail("sweep orphan chunks", err)
		return res
	}
	if res.Expired > 0 || res.Swept > 0 {
		res.Rewritten, err = c.store.CollectGarbage(ctx)
		if err != nil && ctx.Err() == nil {
			c.fail("value-log GC", err)
			return res
		}
	}
	if res.Expired > 0 || res.Swept > 0 {
		c.log.Info("cleaner run", "expired", res.Expired, "swept_uploads", res.Swept,
			"vlog_files_rewritten", res.Rewritten, "took", time.Since(start).Round(time.Millisecond))
	}
	c.metrics.LastSuccess.Set(float64(time.Now().Unix()))
	return res
}

func (c *Cleaner) fail(what string, err error) {
	c.metrics.Errors.Inc()
	c.log.Error("cleaner: "+what, "err", err)
}
