// Package dispatch correlates the commands the relay sends to edge daemons with what they
// answer: every InvokeTool gets a UUID command id and a pending entry keyed by (node id,
// command id); CommandProgress chunks are handed to the caller as they arrive and the
// CommandResult resolves the call. Duplicate, late and unknown results are dropped and
// counted. On the deadline or when the caller gives up, a Cancel is sent to the daemon.
//
// Pending entries belong to the node, not to a stream: when a daemon reconnects, its new
// stream delivers the results of commands sent over the old one. A node whose stream is gone
// and that does not come back within the reconnect grace has its calls failed.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// Errors of Invoke.
var (
	// ErrTooMany: the dispatcher holds its maximum number of pending commands.
	ErrTooMany = errors.New("edge: too many commands in flight")
	// ErrNodeGone: the node's stream closed and the node did not reconnect in time.
	ErrNodeGone = errors.New("edge: node disconnected before answering")
	// ErrShutdown: the dispatcher is shut down.
	ErrShutdown = errors.New("edge: dispatcher shut down")
	// ErrBadRequest: the call itself is invalid (no tool, deadline not positive).
	ErrBadRequest = errors.New("edge: invalid command")
)

// Sender queues a command on a node's live stream without blocking.
type Sender interface {
	Send(nodeID string, cmd *edgepb.EdgeCommand) error
}

// Options tune a Dispatcher; zero values take the defaults.
type Options struct {
	// MaxPending bounds the commands in flight (default 4096).
	MaxPending int
	// Slack is how long past a command's deadline the relay still waits for the daemon's own
	// TimedOut result before giving up and sending Cancel (default 2s).
	Slack time.Duration
	// ReconnectGrace is how long the calls of a node whose stream closed wait for it to
	// reconnect (default 20s).
	ReconnectGrace time.Duration
	// ProgressQueue is the number of chunks buffered per call between the stream reader and
	// the caller (default 64); beyond it the reader waits (back-pressure on that stream).
	ProgressQueue int
	// MaxFleets bounds the fleet commands running at once (default 64).
	MaxFleets int
	// Connected reports whether a node has a live stream (used when the grace ends).
	Connected func(nodeID string) bool
}

// recentMax bounds the memory of finished command ids, used to tell late results from
// unknown ones.
const recentMax = 4096

type key struct{ node, id string }

type call struct {
	progress chan *edgepb.Chunk
	result   chan *edgepb.EdgeResult // capacity 1; written once
	gone     chan struct{}           // closed when the call is failed from outside
	goneErr  error                   // set before gone is closed
	done     chan struct{}           // closed when the caller stops waiting
}

// Metrics are the dispatcher's counters.
type Metrics struct {
	Commands *metrics.CounterVec // by outcome
	Dropped  *metrics.CounterVec // by kind (result|progress), reason (duplicate|late|unknown)
}

// NewMetrics registers the dispatcher metrics in reg.
func NewMetrics(reg *metrics.Registry) *Metrics {
	return &Metrics{
		Commands: reg.Counter("keel_edge_commands_total", "Edge commands by outcome (ok, err, timed_out, cancelled, no_outcome: from the daemon; deadline, caller_cancel, node_gone, send_failed, refused: decided by the relay).", "outcome").
			Init([]string{"ok", "err", "timed_out", "cancelled", "no_outcome", "deadline", "caller_cancel", "node_gone", "send_failed", "refused"}),
		Dropped: reg.Counter("keel_edge_dropped_total", "Command results and progress chunks dropped, by kind and reason (duplicate, late, unknown).", "kind", "reason").
			Init([]string{"result", "progress"}, []string{"duplicate", "late", "unknown"}),
	}
}

// Dispatcher sends commands to edge daemons and routes their answers back.
type Dispatcher struct {
	send Sender
	opts Options
	m    *Metrics
	log  *slog.Logger

	mu       sync.Mutex
	closed   bool
	pending  map[key]*call
	recent   map[key]string // finished ids -> drop reason for a result arriving now
	ring     []key
	ringNext int
	down     map[string]*time.Timer
	fleets   map[string]*Fleet
}

// New returns a dispatcher sending through send.
func New(send Sender, opts Options, m *Metrics, log *slog.Logger) *Dispatcher {
	if opts.MaxPending <= 0 {
		opts.MaxPending = 4096
	}
	if opts.Slack <= 0 {
		opts.Slack = 2 * time.Second
	}
	if opts.ReconnectGrace <= 0 {
		opts.ReconnectGrace = 20 * time.Second
	}
	if opts.ProgressQueue <= 0 {
		opts.ProgressQueue = 64
	}
	if opts.MaxFleets <= 0 {
		opts.MaxFleets = 64
	}
	if opts.Connected == nil {
		opts.Connected = func(string) bool { return false }
	}
	return &Dispatcher{
		send: send, opts: opts, m: m, log: log,
		pending: make(map[key]*call), recent: make(map[key]string), ring: make([]key, recentMax),
		down: make(map[string]*time.Timer), fleets: make(map[string]*Fleet),
	}
}

// Invoke runs tool on the node's daemon with args and deadline and waits for its result.
// progress (may be nil) receives the output chunks as they arrive, in the caller's goroutine.
// The daemon's own outcome (Ok, Err, TimedOut, Cancelled) is returned with a nil error. When
// the daemon does not answer within deadline (plus a little slack), a Cancel is sent and a
// TimedOut result is returned. When ctx ends, a Cancel carrying context.Cause is sent and the
// cause returned. A node with no live stream is an error wrapping registry.ErrNotConnected.
func (d *Dispatcher) Invoke(ctx context.Context, nodeID, tool string, args *structpb.Struct, deadline time.Duration, progress func(*edgepb.Chunk)) (*edgepb.EdgeResult, error) {
	if tool == "" || deadline <= 0 {
		return nil, fmt.Errorf("%w: tool %q, deadline %s", ErrBadRequest, tool, deadline)
	}
	id := uuid.NewString()
	k := key{nodeID, id}
	c := &call{
		progress: make(chan *edgepb.Chunk, d.opts.ProgressQueue),
		result:   make(chan *edgepb.EdgeResult, 1),
		gone:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	d.mu.Lock()
	switch {
	case d.closed:
		d.mu.Unlock()
		d.m.Commands.With("refused").Inc()
		return nil, ErrShutdown
	case len(d.pending) >= d.opts.MaxPending:
		d.mu.Unlock()
		d.m.Commands.With("refused").Inc()
		return nil, ErrTooMany
	}
	d.pending[k] = c
	d.mu.Unlock()
	defer func() {
		close(c.done)
		d.finish(k, c, "late")
	}()

	cmd := &edgepb.EdgeCommand{Command: &edgepb.EdgeCommand_InvokeTool{InvokeTool: &edgepb.InvokeTool{
		CommandId: id, ToolName: tool, Args: args, Deadline: durationpb.New(deadline),
	}}}
	if err := d.send.Send(nodeID, cmd); err != nil {
		d.m.Commands.With("send_failed").Inc()
		return nil, fmt.Errorf("edge: invoke %s on %s: %w", tool, nodeID, err)
	}
	timer := time.NewTimer(deadline + d.opts.Slack)
	defer timer.Stop()
	flush := func() {
		for {
			select {
			case ch := <-c.progress:
				if progress != nil {
					progress(ch)
				}
			default:
				return
			}
		}
	}
	for {
		select {
		case ch := <-c.progress:
			if progress != nil {
				progress(ch)
			}
		case res := <-c.result:
			flush()
			d.m.Commands.With(Outcome(res)).Inc()
			return res, nil
		case <-c.gone:
			flush()
			d.m.Commands.With("node_gone").Inc()
			return nil, fmt.Errorf("edge: invoke %s on %s: %w", tool, nodeID, c.goneErr)
		case <-timer.C:
			d.cancel(nodeID, id, "deadline exceeded")
			d.m.Commands.With("deadline").Inc()
			return &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_TimedOut_{TimedOut: &edgepb.EdgeResult_TimedOut{Deadline: durationpb.New(deadline)}}}, nil
		case <-ctx.Done():
			cause := context.Cause(ctx)
			d.cancel(nodeID, id, cause.Error())
			d.m.Commands.With("caller_cancel").Inc()
			return nil, cause
		}
	}
}

// Outcome names a result's outcome: ok, err, timed_out, cancelled or no_outcome.
func Outcome(r *edgepb.EdgeResult) string {
	switch r.GetOutcome().(type) {
	case *edgepb.EdgeResult_Ok_:
		return "ok"
	case *edgepb.EdgeResult_Err_:
		return "err"
	case *edgepb.EdgeResult_TimedOut_:
		return "timed_out"
	case *edgepb.EdgeResult_Cancelled_:
		return "cancelled"
	}
	return "no_outcome"
}

func (d *Dispatcher) cancel(nodeID, id, reason string) {
	err := d.send.Send(nodeID, &edgepb.EdgeCommand{Command: &edgepb.EdgeCommand_Cancel{Cancel: &edgepb.Cancel{CommandId: id, Reason: reason}}})
	if err != nil {
		d.log.Debug("cancel not sent", "node", nodeID, "command_id", id, "err", err)
	}
}

// finish removes a pending entry if it is still c and remembers the id as finished, so a
// result arriving for it later is counted with reason.
func (d *Dispatcher) finish(k key, c *call, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur, ok := d.pending[k]; ok && cur == c {
		delete(d.pending, k)
	}
	if _, ok := d.recent[k]; ok {
		return
	}
	if old := d.ring[d.ringNext]; old != (key{}) {
		delete(d.recent, old)
	}
	d.ring[d.ringNext] = k
	d.ringNext = (d.ringNext + 1) % len(d.ring)
	d.recent[k] = reason
}

// dropReason says why an answer for k has no pending call: duplicate, late or unknown.
// Called with d.mu held.
func (d *Dispatcher) dropReason(k key) string {
	if r, ok := d.recent[k]; ok {
		return r
	}
	return "unknown"
}

// Result delivers a daemon's CommandResult to the waiting call; a result for no pending call
// (duplicate, late, unknown) is dropped, counted and reported false.
func (d *Dispatcher) Result(nodeID string, r *edgepb.CommandResult) bool {
	k := key{nodeID, r.GetCommandId()}
	d.mu.Lock()
	c, ok := d.pending[k]
	reason := ""
	if ok {
		delete(d.pending, k)
	} else {
		reason = d.dropReason(k)
	}
	d.mu.Unlock()
	if !ok {
		d.m.Dropped.With("result", reason).Inc()
		d.log.Debug("command result dropped", "node", nodeID, "command_id", r.GetCommandId(), "reason", reason)
		return false
	}
	d.finish(k, c, "duplicate")
	res := r.GetResult()
	if res == nil {
		res = &edgepb.EdgeResult{}
	}
	c.result <- res
	return true
}

// Progress hands a CommandProgress chunk to the waiting call. When the call's buffer is full
// it waits until the caller takes a chunk, the call ends or ctx (the stream) ends. A chunk
// for no pending call is dropped, counted and reported false.
func (d *Dispatcher) Progress(ctx context.Context, nodeID string, p *edgepb.CommandProgress) bool {
	k := key{nodeID, p.GetCommandId()}
	d.mu.Lock()
	c, ok := d.pending[k]
	reason := ""
	if !ok {
		reason = d.dropReason(k)
	}
	d.mu.Unlock()
	if !ok || p.GetChunk() == nil {
		if !ok {
			d.m.Dropped.With("progress", reason).Inc()
		}
		return false
	}
	select {
	case c.progress <- p.GetChunk():
		return true
	case <-c.done:
	case <-ctx.Done():
	}
	d.m.Dropped.With("progress", "late").Inc()
	return false
}

// NodeDown tells the dispatcher the node's stream is gone with no newer one: its calls fail
// with ErrNodeGone unless it reconnects within the reconnect grace.
func (d *Dispatcher) NodeDown(nodeID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.down[nodeID]; ok || d.closed {
		return
	}
	d.down[nodeID] = time.AfterFunc(d.opts.ReconnectGrace, func() {
		d.mu.Lock()
		delete(d.down, nodeID)
		d.mu.Unlock()
		if !d.opts.Connected(nodeID) {
			d.FailNode(nodeID, ErrNodeGone)
		}
	})
}

// FailNode fails every pending call of the node with err at once (the node was revoked).
func (d *Dispatcher) FailNode(nodeID string, err error) int {
	d.mu.Lock()
	var failed []*call
	for k, c := range d.pending {
		if k.node == nodeID {
			delete(d.pending, k)
			failed = append(failed, c)
		}
	}
	d.mu.Unlock()
	for _, c := range failed {
		c.goneErr = err
		close(c.gone)
	}
	return len(failed)
}

// Pending returns the number of commands in flight.
func (d *Dispatcher) Pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pending)
}

// PendingFor returns the number of commands in flight on one node.
func (d *Dispatcher) PendingFor(nodeID string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for k := range d.pending {
		if k.node == nodeID {
			n++
		}
	}
	return n
}

// WaitIdle waits until no command is in flight or ctx ends.
func (d *Dispatcher) WaitIdle(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for d.Pending() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Close refuses new commands and fails the ones in flight with ErrShutdown.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	d.closed = true
	var failed []*call
	for k, c := range d.pending {
		delete(d.pending, k)
		failed = append(failed, c)
	}
	for n, t := range d.down {
		t.Stop()
		delete(d.down, n)
	}
	fleets := make([]*Fleet, 0, len(d.fleets))
	for _, f := range d.fleets {
		fleets = append(fleets, f)
	}
	d.mu.Unlock()
	for _, c := range failed {
		c.goneErr = ErrShutdown
		close(c.gone)
	}
	for _, f := range fleets {
		f.Cancel("relay shutting down")
	}
}

// Cancel asks the node's daemon to cancel a command (the caller keeps waiting for the result).
func (d *Dispatcher) Cancel(nodeID, commandID, reason string) error {
	return d.send.Send(nodeID, &edgepb.EdgeCommand{Command: &edgepb.EdgeCommand_Cancel{Cancel: &edgepb.Cancel{CommandId: commandID, Reason: reason}}})
}

// PushConfig sends a config delta to the node's daemon.
func (d *Dispatcher) PushConfig(nodeID string, delta []byte, version string) error {
	return d.send.Send(nodeID, &edgepb.EdgeCommand{Command: &edgepb.EdgeCommand_PushConfig{PushConfig: &edgepb.PushConfig{ConfigDelta: delta, Version: version}}})
}

// Drain asks the node's daemon to refuse new work and finish what it has.
func (d *Dispatcher) Drain(nodeID string) error {
	return d.send.Send(nodeID, &edgepb.EdgeCommand{Command: &edgepb.EdgeCommand_Drain{Drain: &edgepb.Drain{}}})
}

// Shutdown asks the node's daemon to stop after grace.
func (d *Dispatcher) Shutdown(nodeID string, grace time.Duration) error {
	return d.send.Send(nodeID, &edgepb.EdgeCommand{Command: &edgepb.EdgeCommand_Shutdown{Shutdown: &edgepb.Shutdown{Grace: durationpb.New(grace)}}})
}
