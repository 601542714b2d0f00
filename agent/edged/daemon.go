package edged

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
	"github.com/keel-relay/keel/internal/wire/envelope"
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

// maxWaitingFactor: at most this many times edge.tools.max_concurrent invocations may be
// running or waiting for a slot; beyond, InvokeTool is refused as busy.
const maxWaitingFactor = 16

// closeWait bounds how long the relay may take to end the stream after the daemon closed
// its side.
const closeWait = 5 * time.Second

// errDeadline is the cause of a tool's context when its deadline passes.
var errDeadline = errors.New("deadline passed")

// errFinished: the daemon was told to stop and has flushed its stream.
var errFinished = errors.New("edge daemon stopped")

// cancelCause is the cause of a tool's context when it is cancelled.
type cancelCause struct{ reason string }

func (c *cancelCause) Error() string { return "cancelled: " + c.reason }

// job is one InvokeTool being run.
type job struct {
	id     string
	tool   string
	cancel context.CancelCauseFunc
}

// stopRequest asks the daemon to stop after its tools finish, or after grace.
type stopRequest struct {
	grace   time.Duration // <0: no limit (Drain)
	reason  string
	abandon bool // the relay ended the stream: give up a Drain (not a Shutdown)
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

	sem         chan struct{}
	out         chan *edgepb.EdgeEvent
	capsChanged chan struct{}
	jobEnded    chan struct{}
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
func (d *Daemon) Run(ctx context.Context) error {
	creds, err := LoadCredentials(ctx, d.paths, d.log)
	if err != nil {
		return fmt.Errorf("edge daemon: %w", err)
	}
	st, _ := os.Stat(d.paths.Token)
	d.setCreds(creds, st)
	life, cancelLife := context.WithCancel(context.WithoutCancel(ctx))
	d.life = life
	var bg sync.WaitGroup
	bg.Go(func() { d.refresher(life) })
	bg.Go(func() { d.coordinator(ctx) })
	defer func() {
		cancelLife()
		d.cancelAll("agent stopping")
		d.jobsWG.Wait()
		bg.Wait()
		if n := len(d.out); n > 0 {
			d.log.Warn("edge: events not sent before stopping", "count", n)
		}
		d.log.Info("edge daemon stopped")
	}()
	d.log.Info("edge daemon starting", "relay", d.relay, "node_id", creds.NodeID, "token_expires", creds.Claims.Expiry)
	bo := NewBackoff(d.opts.BackoffBase, d.opts.BackoffCap)
	for {
		start := time.Now()
		err := d.session(life)
		if errors.Is(err, errFinished) || d.finished() {
			return nil
		}
		d.sendStop(stopRequest{abandon: true})
		lasted := time.Since(start)
		if lasted >= d.opts.ResetAfter {
			bo.Reset()
		}
		delay := bo.Next()
		d.log.Warn("edge: stream ended; reconnecting", "err", err, "lasted", lasted.Round(time.Millisecond),
			"attempt", bo.Attempt(), "delay", delay, "ceiling", bo.Ceiling(bo.Attempt()))
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-d.finish:
			t.Stop()
			return nil
		}
	}
}

// finished reports whether the daemon was told to stop and its tools are done.
func (d *Daemon) finished() bool {
	select {
	case <-d.finish:
		return true
	default:
		return false
	}
}

// Credentials returns the credentials in use.
func (d *Daemon) Credentials() *Credentials {
	d.credMu.RLock()
	defer d.credMu.RUnlock()
	return d.creds
}

func (d *Daemon) setCreds(c *Credentials, st os.FileInfo) {
	d.credMu.Lock()
	d.creds, d.credStamp = c, st
	d.credMu.Unlock()
}

// RotateKey rotates the node key now (see the package function RotateKey) and switches
// the live stream to the new key and token: sealing waits meanwhile, so no event goes
// out with the old token once the relay has blacklisted it.
func (d *Daemon) RotateKey(ctx context.Context) error {
	d.credMu.Lock()
	defer d.credMu.Unlock()
	d.mu.Lock()
	e := d.edge
	d.mu.Unlock()
	creds, _, err := RotateKey(ctx, d.relay, e, d.log)
	if err != nil {
		return err
	}
	st, _ := os.Stat(d.paths.Token)
	d.creds, d.credStamp = creds, st
	return nil
}

// reloadIfChanged reloads the credentials when the token file changed on disk (another
// process rotated the key or enrolled again).
func (d *Daemon) reloadIfChanged(ctx context.Context) {
	st, err := os.Stat(d.paths.Token)
	d.credMu.RLock()
	prev := d.credStamp
	d.credMu.RUnlock()
	if err != nil || (prev != nil && os.SameFile(prev, st) && prev.ModTime().Equal(st.ModTime()) && prev.Size() == st.Size()) {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, rpcTimeout+5*time.Second)
	defer cancel()
	creds, err := LoadCredentials(lctx, d.paths, d.log)
	if err != nil {
		d.log.Error("edge: the token file changed but cannot be used", "err", err)
		return
	}
	st, _ = os.Stat(d.paths.Token)
	d.setCreds(creds, st)
	d.log.Info("edge: credentials reloaded from disk", "node_id", creds.NodeID, "token_expires", creds.Claims.Expiry)
}

// refresher watches the credential files and refreshes the token before it expires.
func (d *Daemon) refresher(life context.Context) {
	t := time.NewTicker(d.opts.CredentialPoll)
	defer t.Stop()
	var nextTry time.Time
	for {
		select {
		case <-life.Done():
			return
		case <-t.C:
		}
		d.reloadIfChanged(life)
		c := d.Credentials()
		now := time.Now()
		if now.Before(c.RefreshAt(d.opts.RefreshFraction)) || now.Before(nextTry) {
			continue
		}
		d.log.Info("edge: token nearing expiry; rotating the key for a new one", "expires", c.Claims.Expiry)
		rctx, cancel := context.WithTimeout(life, rpcTimeout+5*time.Second)
		err := d.RotateKey(rctx)
		cancel()
		if err != nil {
			retry := time.Duration(float64(30*time.Second) * (0.5 + rand.Float64()))
			nextTry = time.Now().Add(retry)
			d.log.Error("edge: token refresh failed", "err", err, "expires", c.Claims.Expiry, "retry_in", retry.Round(time.Second))
		}
	}
}

// coordinator turns stop requests (Drain, Shutdown, ctx ending) into a stop: it refuses
// new work, waits for the tools to finish, cancels them when the grace ends, and then
// closes d.finish.
//
// A Drain is also what a relay sends every stream when it stops gracefully, so it does
// not end the daemon when the relay ends the stream itself: once idle the daemon waits
// DrainLinger with the stream open; if the relay closes the stream first (it is
// restarting), the drain is abandoned and the daemon reconnects; else the daemon closes
// the stream and Run returns.
func (d *Daemon) coordinator(ctx context.Context) {
	var (
		deadline            *time.Timer
		deadlineAt          time.Time
		deadlineC, flushC   <-chan time.Time
		linger              *time.Timer
		lingerC             <-chan time.Time
		stopping, cancelled bool
		drainOnly           = true
		reason              string
		ctxDone             = ctx.Done()
	)
	stopTimers := func() {
		if deadline != nil {
			deadline.Stop()
			deadline, deadlineC = nil, nil
		}
		if linger != nil {
			linger.Stop()
			linger, lingerC = nil, nil
		}
	}
	defer stopTimers()
	apply := func(r stopRequest) {
		if r.abandon {
			if stopping && drainOnly {
				stopping = false
				stopTimers()
				d.setStopping(false)
				d.log.Info("edge: the relay ended the stream during a drain (it is restarting): drain abandoned, reconnecting")
			}
			return
		}
		if r.grace >= 0 {
			drainOnly = false
		}
		if !stopping {
			stopping, reason = true, r.reason
			n := d.setStopping(true)
			d.log.Info("edge: stopping: refusing new work", "reason", r.reason, "in_flight", n, "grace", r.grace)
		}
		if at := time.Now().Add(r.grace); r.grace >= 0 && !cancelled && (deadline == nil || at.Before(deadlineAt)) {
			if deadline != nil {
				deadline.Stop()
			}
			deadline, deadlineAt, reason = time.NewTimer(r.grace), at, r.reason
			deadlineC = deadline.C
		}
	}
	for {
		select {
		case <-ctxDone:
			ctxDone = nil
			apply(stopRequest{grace: 0, reason: "agent stopping"})
		case r := <-d.stopReq:
			apply(r)
		case <-deadlineC:
			deadlineC = nil
			cancelled = true
			d.cancelAll(reason + ": grace period over")
			flushC = time.After(d.opts.StopFlush)
		case <-flushC:
			d.log.Warn("edge: tools still running after being cancelled; closing anyway")
			close(d.finish)
			return
		case <-lingerC:
			lingerC = nil
			if stopping && drainOnly && d.running() == 0 {
				d.log.Info("edge: drained and idle; closing the stream", "reason", reason)
				close(d.finish)
				return
			}
		case <-d.jobEnded:
		case <-d.life.Done():
			return
		}
		if !stopping || d.running() != 0 {
			continue
		}
		if !drainOnly {
			d.log.Info("edge: idle; closing the stream", "reason", reason)
			close(d.finish)
			return
		}
		if linger == nil {
			linger = time.NewTimer(d.opts.DrainLinger)
			lingerC = linger.C
		}
	}
}

// setStopping sets whether new work is refused and returns how many tools run.
func (d *Daemon) setStopping(v bool) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopping = v
	return len(d.jobs)
}

// requestStop asks the coordinator to stop after grace (<0: when idle, a Drain).
func (d *Daemon) requestStop(grace time.Duration, reason string) {
	d.sendStop(stopRequest{grace: grace, reason: reason})
}

func (d *Daemon) sendStop(r stopRequest) {
	select {
	case d.stopReq <- r:
	case <-d.finish: // the coordinator is done
	case <-d.life.Done():
	}
}

func (d *Daemon) running() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.jobs)
}

// cancelAll cancels every running tool.
func (d *Daemon) cancelAll(reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, j := range d.jobs {
		j.cancel(&cancelCause{reason: reason})
	}
}

// capabilities returns what the daemon declares now.
func (d *Daemon) capabilities() *edgepb.EdgeCapabilities {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Capabilities(d.edge)
}

// session runs one ConnectEdge stream until it ends. It returns errFinished when the
// daemon stopped and the stream was flushed and closed.
func (d *Daemon) session(life context.Context) error {
	d.reloadIfChanged(life)
	creds := d.Credentials()
	if time.Now().After(creds.Claims.Expiry) {
		d.log.Error("edge: the node security token has expired; rotate-key cannot renew it: enroll again (keel-agent edge enroll --force)",
			"expired", creds.Claims.Expiry)
	}
	d.mu.Lock()
	e := d.edge
	d.mu.Unlock()
	conn, err := dial(d.relay, e)
	if err != nil {
		return err
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(life)
	defer cancel()
	// Until the writer runs, a stop must not wait for a hanging connection attempt.
	connected := make(chan struct{})
	go func() {
		select {
		case <-d.finish:
			select {
			case <-connected:
			default:
				cancel()
			}
		case <-connected:
		case <-sctx.Done():
		}
	}()
	md := metadata.Pairs(edgetoken.AuthorizationKey, edgetoken.Bearer(creds.Token))
	stream, err := edgepb.NewNodeClusterServiceClient(conn).ConnectEdge(metadata.NewOutgoingContext(sctx, md))
	if err != nil {
		return fmt.Errorf("ConnectEdge: %w", err)
	}
	streamID := uuid.NewString()
	select {
	case <-d.capsChanged: // the Hello carries the current capabilities
	default:
	}
	caps := d.capabilities()
	s := &streamWriter{d: d, stream: stream, id: streamID}
	hello := &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_Hello{Hello: &edgepb.Hello{Capabilities: caps, StreamId: streamID}}}
	if err := s.send(hello); err != nil {
		return fmt.Errorf("send Hello: %w", err)
	}
	close(connected)
	d.log.Info("edge: connected", "relay", d.relay, "stream_id", streamID, "tools", caps.GetLocalTools())

	writerDone := make(chan error, 1)
	readerDone := make(chan error, 1)
	go func() { writerDone <- s.run(sctx) }()
	go func() { readerDone <- d.read(sctx, stream) }()
	select {
	case err := <-readerDone:
		cancel()
		<-writerDone
		return err
	case err := <-writerDone:
		if errors.Is(err, errFinished) {
			t := time.NewTimer(closeWait)
			select {
			case <-readerDone:
			case <-t.C:
			}
			t.Stop()
			cancel()
			return errFinished
		}
		cancel()
		<-readerDone
		return err
	}
}

// read handles the relay's commands until the stream ends.
func (d *Daemon) read(ctx context.Context, stream grpc.BidiStreamingClient[edgepb.EdgeEvent, edgepb.EdgeCommand]) error {
	for {
		cmd, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		d.handle(ctx, cmd)
	}
}

// streamWriter is the one goroutine that sends on a stream.
type streamWriter struct {
	d      *Daemon
	stream grpc.BidiStreamingClient[edgepb.EdgeEvent, edgepb.EdgeCommand]
	id     string
	last   time.Time
}

// send seals ev with the current credentials and sends it. Timestamps never go back on
// a stream, even if the clock does.
func (s *streamWriter) send(ev *edgepb.EdgeEvent) error {
	s.d.credMu.RLock()
	defer s.d.credMu.RUnlock()
	c := s.d.creds
	now := time.Now()
	if now.Before(s.last) {
		now = s.last
	}
	s.last = now
	if err := envelope.Seal(c.Key, c.Token, c.NodeID, s.id, now, ev); err != nil {
		return err
	}
	return s.stream.Send(ev)
}

// run sends heartbeats, capability updates and queued events until the stream fails or
// the daemon stops; then it sends what is queued and closes its side (errFinished).
func (s *streamWriter) run(ctx context.Context) error {
	d := s.d
	if ev := d.resend; ev != nil {
		if err := s.send(ev); err != nil {
			return err
		}
		d.resend = nil
	}
	hb := time.NewTicker(d.heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-hb.C:
			ev := &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_Heartbeat{Heartbeat: &edgepb.Heartbeat{SentAt: timestamppb.Now()}}}
			if err := s.send(ev); err != nil {
				return fmt.Errorf("send Heartbeat: %w", err)
			}
		case <-d.capsChanged:
			caps := d.capabilities()
			ev := &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CapabilityUpdate{CapabilityUpdate: &edgepb.CapabilityUpdate{Capabilities: caps}}}
			if err := s.send(ev); err != nil {
				return fmt.Errorf("send CapabilityUpdate: %w", err)
			}
			d.log.Info("edge: capabilities sent", "tools", caps.GetLocalTools())
		case ev := <-d.out:
			if err := s.send(ev); err != nil {
				d.resend = ev
				return err
			}
		case <-d.finish:
		flush:
			for {
				select {
				case ev := <-d.out:
					if err := s.send(ev); err != nil {
						return err
					}
				default:
					break flush
				}
			}
			if err := s.stream.CloseSend(); err != nil {
				return err
			}
			return errFinished
		}
	}
}

// handle acts on one command from the relay.
func (d *Daemon) handle(ctx context.Context, cmd *edgepb.EdgeCommand) {
	switch c := cmd.GetCommand().(type) {
	case *edgepb.EdgeCommand_InvokeTool:
		d.invoke(ctx, c.InvokeTool)
	case *edgepb.EdgeCommand_Cancel:
		d.mu.Lock()
		j := d.jobs[c.Cancel.GetCommandId()]
		d.mu.Unlock()
		if j == nil {
			d.log.Debug("edge: cancel for a command not running", "command_id", c.Cancel.GetCommandId())
			return
		}
		d.log.Info("edge: cancelling", "command_id", j.id, "tool", j.tool, "reason", c.Cancel.GetReason())
		j.cancel(&cancelCause{reason: c.Cancel.GetReason()})
	case *edgepb.EdgeCommand_PushConfig:
		d.pushConfig(c.PushConfig)
	case *edgepb.EdgeCommand_Drain:
		d.log.Info("edge: drain requested: finishing in-flight tools, then exiting")
		d.requestStop(-1, "drain")
	case *edgepb.EdgeCommand_Shutdown:
		grace := max(c.Shutdown.GetGrace().AsDuration(), 0)
		d.log.Info("edge: shutdown requested", "grace", grace)
		d.requestStop(grace, "shutdown")
	default:
		d.log.Warn("edge: unknown command from the relay; ignored")
	}
}

// pushConfig applies a config delta to the merged config in memory.
func (d *Daemon) pushConfig(pc *edgepb.PushConfig) {
	delta, err := ParseDelta(pc.GetConfigDelta())
	if err != nil {
		d.log.Error("edge: config push refused", "version", pc.GetVersion(), "err", err)
		return
	}
	d.mu.Lock()
	next, err := delta.Apply(d.edge)
	if err != nil {
		d.mu.Unlock()
		d.log.Error("edge: config push refused", "version", pc.GetVersion(), "err", err)
		return
	}
	before := Capabilities(d.edge)
	d.edge, d.configVersion = next, pc.GetVersion()
	after := Capabilities(d.edge)
	d.mu.Unlock()
	changed := !slices.Equal(before.GetLocalTools(), after.GetLocalTools()) || !maps.Equal(before.GetCustomLabels(), after.GetCustomLabels())
	d.log.Info("edge: config applied", "version", pc.GetVersion(), "tools", after.GetLocalTools(), "capabilities_changed", changed)
	if changed {
		select {
		case d.capsChanged <- struct{}{}:
		default:
		}
	}
}

// ConfigVersion returns the version of the last config delta applied ("" = none).
func (d *Daemon) ConfigVersion() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.configVersion
}

// invoke starts a tool, or answers at once with a refusal.
func (d *Daemon) invoke(ctx context.Context, inv *edgepb.InvokeTool) {
	id := inv.GetCommandId()
	if id == "" {
		d.log.Warn("edge: InvokeTool without a command id; ignored", "tool", inv.GetToolName())
		return
	}
	d.mu.Lock()
	if _, dup := d.jobs[id]; dup {
		d.mu.Unlock()
		d.log.Warn("edge: InvokeTool for a command already running; ignored", "command_id", id)
		return
	}
	var refusal *toolError
	var argv []string
	switch {
	case d.stopping:
		refusal = refuse(CodeDraining, "the daemon is draining; no new work")
	case len(d.jobs) >= cap(d.sem)*maxWaitingFactor:
		refusal = refuse(CodeBusy, "%d tools running or waiting, the most this node takes", len(d.jobs))
	default:
		argv, refusal = resolveTool(d.edge.Tools, inv.GetToolName(), inv.GetArgs())
	}
	if refusal != nil {
		d.mu.Unlock()
		d.log.Info("edge: InvokeTool refused", "command_id", id, "tool", inv.GetToolName(), "code", refusal.code, "reason", refusal.msg)
		d.enqueue(ctx, result(id, &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Err_{Err: &edgepb.EdgeResult_Err{Code: refusal.code, Message: refusal.msg}}}))
		return
	}
	deadline := inv.GetDeadline().AsDuration()
	if deadline <= 0 {
		deadline = DefaultDeadline
	}
	deadline = min(deadline, MaxDeadline)
	jctx, cancel := context.WithCancelCause(d.life)
	j := &job{id: id, tool: inv.GetToolName(), cancel: cancel}
	d.jobs[id] = j
	d.jobsWG.Add(1)
	d.mu.Unlock()
	d.log.Info("edge: running tool", "command_id", id, "tool", j.tool, "argv", argv, "deadline", deadline,
		"user_tenant", inv.GetSealEnvelope().GetTenantId())
	go d.runJob(jctx, j, argv, deadline)
}

// runJob runs one tool and sends its output and result.
func (d *Daemon) runJob(jctx context.Context, j *job, argv []string, deadline time.Duration) {
	defer func() {
		j.cancel(nil)
		d.mu.Lock()
		delete(d.jobs, j.id)
		d.mu.Unlock()
		select {
		case d.jobEnded <- struct{}{}:
		default:
		}
		d.jobsWG.Done()
	}()
	ctx, cancel := context.WithTimeoutCause(jctx, deadline, errDeadline)
	defer cancel()
	var res *edgepb.EdgeResult
	select {
	case d.sem <- struct{}{}:
		res = d.execute(ctx, j, argv, deadline)
		<-d.sem
	case <-ctx.Done():
		res = interrupted(ctx, deadline)
	}
	d.log.Info("edge: tool done", "command_id", j.id, "tool", j.tool, "outcome", outcomeName(res))
	d.enqueue(d.life, result(j.id, res))
}

// execute runs argv for job j, streaming its output.
func (d *Daemon) execute(ctx context.Context, j *job, argv []string, deadline time.Duration) *edgepb.EdgeResult {
	emitter := func(stdout bool) chunkWriter {
		return chunkWriter{emit: func(data []byte) error {
			ch := &edgepb.Chunk{Kind: &edgepb.Chunk_Stderr{Stderr: data}}
			if stdout {
				ch = &edgepb.Chunk{Kind: &edgepb.Chunk_Stdout{Stdout: data}}
			}
			ev := &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandProgress{CommandProgress: &edgepb.CommandProgress{CommandId: j.id, Chunk: ch}}}
			if !d.enqueue(ctx, ev) {
				return context.Cause(ctx)
			}
			return nil
		}}
	}
	start := time.Now()
	code, err := runProcess(ctx, argv, emitter(true), emitter(false))
	dur := time.Since(start)
	switch {
	case ctx.Err() != nil:
		return interrupted(ctx, deadline)
	case err != nil:
		return &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Err_{Err: &edgepb.EdgeResult_Err{Code: CodeExecFailed, Message: err.Error()}}}
	}
	return &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Ok_{Ok: &edgepb.EdgeResult_Ok{ExitCode: int32(code), Duration: durationpb.New(dur)}}}
}

// interrupted is the result of a tool whose context ended: TimedOut or Cancelled.
func interrupted(ctx context.Context, deadline time.Duration) *edgepb.EdgeResult {
	cause := context.Cause(ctx)
	if errors.Is(cause, errDeadline) {
		return &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_TimedOut_{TimedOut: &edgepb.EdgeResult_TimedOut{Deadline: durationpb.New(deadline)}}}
	}
	reason := "agent stopping"
	var cc *cancelCause
	if errors.As(cause, &cc) {
		reason = cc.reason
	}
	return &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Cancelled_{Cancelled: &edgepb.EdgeResult_Cancelled{Reason: reason}}}
}

func outcomeName(r *edgepb.EdgeResult) string {
	switch o := r.GetOutcome().(type) {
	case *edgepb.EdgeResult_Ok_:
		return fmt.Sprintf("ok (exit %d)", o.Ok.GetExitCode())
	case *edgepb.EdgeResult_Err_:
		return "err " + o.Err.GetCode()
	case *edgepb.EdgeResult_TimedOut_:
		return "timed out"
	case *edgepb.EdgeResult_Cancelled_:
		return "cancelled: " + o.Cancelled.GetReason()
	}
	return "none"
}

// result wraps an outcome as a CommandResult event.
func result(id string, r *edgepb.EdgeResult) *edgepb.EdgeEvent {
	return &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandResult{CommandResult: &edgepb.CommandResult{CommandId: id, Result: r}}}
}

// enqueue queues ev for the stream, waiting while the queue is full; false when ctx
// ended first.
func (d *Daemon) enqueue(ctx context.Context, ev *edgepb.EdgeEvent) bool {
	select {
	case d.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
