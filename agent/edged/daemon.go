package edged

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/internal/sdnotify"
	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// Options tune a Daemon beyond its config; zero values take the defaults.
type Options struct {
	// BackoffBase is the ceiling of the first reconnection delay (default 1 s).
	BackoffBase time.Duration
	// BackoffCap bounds every reconnection delay (default 60 s).
	BackoffCap time.Duration
	// ResetAfter: a stream that lasted this long starts the delays over (default 1 min).
	ResetAfter time.Duration
	// CredentialPoll is how often the token file is checked for a change made by another
	// process (keel-agent edge rotate-key, enroll --force) and the token's age for a
	// refresh (default 5 s).
	CredentialPoll time.Duration
	// RefreshFraction: the token is refreshed (by a key rotation) after this fraction of
	// its lifetime (default 0.8).
	RefreshFraction float64
	// SendQueue bounds the events waiting for the stream (default 256).
	SendQueue int
	// StopFlush bounds how long, at the end, results may take to reach the relay
	// (default 10 s).
	StopFlush time.Duration
	// DrainLinger is how long a drained, idle daemon keeps its stream open before it
	// closes it and stops (default 5 s): a relay that is itself stopping closes it first,
	// and the daemon then reconnects instead (see Daemon.Run).
	DrainLinger time.Duration
	// Notify tells systemd when the daemon has started (READY=1, once its credentials are
	// loaded: connecting to the relay is its job from then on, not a start that failed),
	// whether it is connected (STATUS=) and when it stops (STOPPING=1); nil sends nothing.
	Notify *sdnotify.Notifier
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.BackoffBase, time.Second)
	def(&o.BackoffCap, time.Minute)
	def(&o.ResetAfter, time.Minute)
	def(&o.CredentialPoll, 5*time.Second)
	def(&o.StopFlush, 10*time.Second)
	def(&o.DrainLinger, 5*time.Second)
	if o.RefreshFraction <= 0 || o.RefreshFraction >= 1 {
		o.RefreshFraction = 0.8
	}
	if o.SendQueue <= 0 {
		o.SendQueue = 256
	}
	return o
}

// Daemon is the edge daemon: one per keel-agent.
type Daemon struct {
	log       *slog.Logger
	opts      Options
	relay     string
	paths     Paths
	heartbeat time.Duration

	mu            sync.Mutex
	edge          config.EdgeConfig // the merged config: the file, then PushConfig deltas
	configVersion string
	jobs          map[string]*job
	stopping      bool

	credMu    sync.RWMutex // shared while sealing and sending; exclusive to change creds
	creds     *Credentials
	credStamp os.FileInfo

	sem         chan struct{}          // one slot per tool allowed to run at once
	out         chan *edgepb.EdgeEvent // events waiting for the stream writer
	capsChanged chan struct{}          // the capabilities changed: send an update
	jobEnded    chan struct{}          // a tool ended: the coordinator looks again
	stopReq     chan stopRequest
	finish      chan struct{} // closed when the daemon should flush and close its stream
	resend      *edgepb.EdgeEvent
	jobsWG      sync.WaitGroup
	life        context.Context
}

// New returns a daemon for cfg's edge section. The relay is edge.relay.
func New(cfg *config.Config, opts Options, log *slog.Logger) (*Daemon, error) {
	e := cfg.Edge
	if e.Relay == "" {
		return nil, errors.New("edge.relay is not set")
	}
	if err := checkCapabilities(e); err != nil {
		return nil, err
	}
	if e.Tools.MaxConcurrent < 1 {
		e.Tools.MaxConcurrent = 1
	}
	opts = opts.withDefaults()
	return &Daemon{
		log: log, opts: opts, relay: e.Relay, heartbeat: e.HeartbeatInterval,
		paths:       Paths{Key: e.KeyFile, Token: e.TokenFile},
		edge:        e,
		jobs:        map[string]*job{},
		sem:         make(chan struct{}, e.Tools.MaxConcurrent),
		out:         make(chan *edgepb.EdgeEvent, opts.SendQueue),
		capsChanged: make(chan struct{}, 1),
		jobEnded:    make(chan struct{}, 1),
		stopReq:     make(chan stopRequest, 4),
		finish:      make(chan struct{}),
	}, nil
}

// Run runs the edge daemon of cfg until ctx ends (it then cancels running tools, sends
// their results and closes the stream) or the relay sends Drain or Shutdown. It returns
// nil when stopped that way, an error when it cannot start (not enrolled, bad config).
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	d, err := New(cfg, Options{}, log)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// Run keeps the stream up until ctx ends or the relay sends Drain or Shutdown; see the
// package function Run.
//
// The daemon lives in d.life, which outlasts ctx: when ctx ends the stop coordinator
// (stop.go) lets the tools end and their results go out before the stream closes.
func (d *Daemon) Run(ctx context.Context) error {
	creds, err := LoadCredentials(ctx, d.paths, d.log)
	if err != nil {
		return fmt.Errorf("edge daemon: %w", err)
	}
	d.installCreds(creds)
	life, cancelLife := context.WithCancel(context.WithoutCancel(ctx))
	d.life = life
	var bg sync.WaitGroup
	bg.Go(func() { d.refresher(life) })
	bg.Go(func() { d.coordinator(ctx) })
	defer d.windDown(cancelLife, &bg)
	d.log.Info("edge daemon starting", "relay", d.relay, "node_id", creds.NodeID, "token_expires", creds.Claims.Expiry)
	d.notified(d.opts.Notify.Ready("node " + creds.NodeID + ": connecting to " + d.relay))
	d.keepConnected(life)
	return nil
}

// keepConnected runs one session (session.go) after another, with a backoff delay
// between them, until the daemon has finished.
func (d *Daemon) keepConnected(life context.Context) {
	bo := NewBackoff(d.opts.BackoffBase, d.opts.BackoffCap)
	for {
		start := time.Now()
		err := d.session(life)
		if errors.Is(err, errFinished) || d.finished() {
			return
		}
		d.sendStop(stopRequest{abandon: true})
		if !d.pause(bo, time.Since(start), err) {
			return
		}
	}
}

// pause waits before the next session after one that lasted lasted and ended with err.
// It returns false when the daemon finished meanwhile.
func (d *Daemon) pause(bo *Backoff, lasted time.Duration, err error) bool {
	if lasted >= d.opts.ResetAfter {
		bo.Reset()
	}
	delay := bo.Next()
	d.log.Warn("edge: stream ended; reconnecting", "err", err, "lasted", lasted.Round(time.Millisecond),
		"attempt", bo.Attempt(), "delay", delay, "ceiling", bo.Ceiling(bo.Attempt()))
	d.notified(d.opts.Notify.Status(fmt.Sprintf("not connected to %s (attempt %d, next in %s): %v", d.relay, bo.Attempt(), delay.Round(time.Millisecond), err)))
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-d.finish:
		return false
	}
}

// notified logs a notification systemd did not get.
func (d *Daemon) notified(err error) {
	if err != nil {
		d.log.Warn("systemd notification not sent", "err", err)
	}
}

// windDown ends the daemon's life: it cancels the tools still running, waits for them
// and the background goroutines, and says what was left unsent.
func (d *Daemon) windDown(cancelLife context.CancelFunc, bg *sync.WaitGroup) {
	d.notified(d.opts.Notify.Stopping("stopping"))
	cancelLife()
	d.cancelAll("agent stopping")
	d.jobsWG.Wait()
	bg.Wait()
	if n := len(d.out); n > 0 {
		d.log.Warn("edge: events not sent before stopping", "count", n)
	}
	d.log.Info("edge daemon stopped")
}

// signal wakes whoever waits on ch (a channel of capacity 1) without blocking: a wake-up
// already pending stands for this one.
func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// clearSignal drops a pending wake-up from ch.
func clearSignal(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}
