package remoterun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/internal/membudget"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/runoutput"
	"github.com/keel-relay/keel/relay/forward"
	"github.com/keel-relay/keel/relay/nodemap"
)

// Options are the remote-run settings.
type Options struct {
	// Command is the argv template run for a node of this relay (see ExpandCommand).
	Command []string
	// Concurrency bounds the node runs in progress, over all calls.
	Concurrency int
	// Timeout is each node run's deadline.
	Timeout time.Duration
	// MaxCalls bounds the calls in progress (asynchronous ones included); more get 429.
	MaxCalls int
	// OutputLines bounds the output lines a call queues for its client (each at most
	// runoutput.MaxLine bytes behind its prefix); a slow client slows the runs down.
	// 0: DefaultOutputLines.
	OutputLines int
	// Pressure, when not nil, refuses new calls with 429 and Retry-After while the process is
	// near its memory budget.
	Pressure membudget.Pressure
}

// DefaultOutputLines is Options.OutputLines when unset.
const DefaultOutputLines = 256

// EdgeRunner runs the agent of a node over its live edge stream (tool agent-run, argument
// classes). It is the seam for the edge API: nil means no node has a stream.
type EdgeRunner interface {
	// RunAgent runs the agent on node, sending each output line (without a prefix, ending in
	// '\n') to out. ok is false when the node has no live stream; the command is used then.
	RunAgent(ctx context.Context, node string, classes []string, out func(line []byte)) (res runoutput.Result, ok bool)
}

// Metrics are the remote-run counters.
type Metrics struct {
	Calls   *metrics.CounterVec // by mode (sync|async), result (accepted|refused|bad_request)
	Nodes   *metrics.CounterVec // by via (command|edge|sub-relay|unknown), result (ok|failed|error)
	Running metrics.Gauge
}

// NewMetrics registers the remote-run metrics in reg.
func NewMetrics(reg *metrics.Registry) *Metrics {
	return &Metrics{
		Calls: reg.Counter("keel_remote_run_calls_total", "Remote-run API calls by mode and result.", "mode", "result").
			Init([]string{"sync", "async"}, []string{"accepted", "refused", "bad_request"}),
		Nodes: reg.Counter("keel_remote_run_nodes_total", "Node runs by way (command, edge, sub-relay, unknown) and result (ok: exit 0, failed: other exit code, error: no exit code).", "via", "result").
			Init([]string{"command", "edge", "sub-relay", "unknown"}, []string{"ok", "failed", "error"}),
		Running: reg.Gauge("keel_remote_run_nodes_running", "Node runs in progress on this relay.").With(),
	}
}

// Handler serves the remote-run routes.
type Handler struct {
	opts    Options
	nodes   func() *nodemap.Map
	hops    *forward.Hops
	edge    EdgeRunner
	log     *slog.Logger
	metrics *Metrics

	slots chan struct{} // node runs
	calls chan struct{} // calls in progress

	base     context.Context // parent of asynchronous runs; cancelled by Shutdown
	stopBase context.CancelCauseFunc
	async    sync.WaitGroup
}

// New returns a handler. hops resolves sub-relays (with the remote-run URL template); edge may
// be nil.
func New(opts Options, nodes func() *nodemap.Map, hops *forward.Hops, edge EdgeRunner, m *Metrics, log *slog.Logger) *Handler {
	opts.Concurrency = max(opts.Concurrency, 1)
	opts.MaxCalls = max(opts.MaxCalls, 1)
	if opts.OutputLines <= 0 {
		opts.OutputLines = DefaultOutputLines
	}
	base, stop := context.WithCancelCause(context.Background())
	return &Handler{
		opts: opts, nodes: nodes, hops: hops, edge: edge, log: log, metrics: m,
		slots: make(chan struct{}, opts.Concurrency), calls: make(chan struct{}, opts.MaxCalls),
		base: base, stopBase: stop,
	}
}

// Shutdown cancels the asynchronous runs still going (their processes are killed) and waits
// for them to end, at most until ctx is done.
func (h *Handler) Shutdown(ctx context.Context) {
	h.stopBase(errStopping)
	done := make(chan struct{})
	go func() { h.async.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		h.log.Warn("asynchronous remote runs still ending at shutdown")
	}
}

// All handles POST .../remote-run/all.
func (h *Handler) All(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	h.serve(w, r, "all", "")
}

// Node handles POST .../remote-run/nodes/:node.
func (h *Handler) Node(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	h.serve(w, r, "node", ps.ByName("node"))
}

// Nodes handles POST .../remote-run/nodes.
func (h *Handler) Nodes(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	h.serve(w, r, "nodes", "")
}

func mode(p Params) string {
	if p.Async {
		return "async"
	}
	return "sync"
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, kind, pathNode string) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	p, err := Parse(r, kind, pathNode)
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) {
			h.log.Error("remote run: parse", "err", err)
		}
		h.metrics.Calls.With("unknown", "bad_request").Inc()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if h.opts.Pressure != nil && h.opts.Pressure.Near() {
		h.metrics.Calls.With(mode(p), "refused").Inc()
		h.log.Warn("remote run refused: the relay is near its memory budget", "peer", r.RemoteAddr)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "the relay is near its memory budget; retry later", http.StatusTooManyRequests)
		return
	}
	select {
	case h.calls <- struct{}{}:
	default:
		h.metrics.Calls.With(mode(p), "refused").Inc()
		h.log.Warn("remote run refused: too many calls in progress", "max_calls", h.opts.MaxCalls, "peer", r.RemoteAddr)
		w.Header().Set("Retry-After", "5")
		http.Error(w, fmt.Sprintf("too many remote-run calls in progress (at most %d); retry later", h.opts.MaxCalls), http.StatusTooManyRequests)
		return
	}
	h.metrics.Calls.With(mode(p), "accepted").Inc()
	plan := h.plan(p)
	log := h.log.With("call", kind, "peer", r.RemoteAddr, "async", p.Async, "keep_output", p.KeepOutput,
		"local", len(plan.local), "sub_relays", len(plan.sub), "unknown", len(plan.unknown))
	log.Info("remote run")

	if !p.Async {
		defer func() { <-h.calls }()
		startStream(w)
		st := newStream(w, h.opts.OutputLines)
		ctx, cancel := callerContext(r.Context())
		defer cancel()
		h.execute(ctx, p, plan, st, log)
		st.close()
		return
	}
	// Asynchronous: the runs go on without the caller, on the handler's own context.
	var st *stream
	if p.KeepOutput {
		startStream(w)
		st = newStream(w, h.opts.OutputLines)
	} else {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		st = newStream(nil, h.opts.OutputLines)
	}
	h.async.Add(1)
	done := make(chan struct{})
	go func() {
		defer h.async.Done()
		defer func() { <-h.calls }()
		defer close(done)
		h.execute(h.base, p, plan, st, log)
		st.close()
	}()
	if p.KeepOutput {
		// Stream to the caller while it stays; the runs do not depend on it.
		select {
		case <-done:
		case <-r.Context().Done():
			st.detach()
		}
	}
}

// ErrCallerGone is the cause of a synchronous call's cancellation when its caller closed the
// connection. net/http also takes a client that only half-closes (shuts down its sending side
// after the request) as gone, as nginx does: its runs are cancelled and the answer it may
// still read says so.
var ErrCallerGone = errors.New("the caller closed its connection")

// errStopping is the cause of the cancellation of asynchronous runs by Shutdown.
var errStopping = errors.New("the relay is stopping")

// callerContext returns the context of a synchronous call's runs: cancelled, with cause
// ErrCallerGone, when the request's context is.
func callerContext(req context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(req))
	stop := context.AfterFunc(req, func() { cancel(ErrCallerGone) })
	return ctx, func() { stop(); cancel(context.Canceled) }
}

func startStream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(w).Flush()
}

// plan is who runs what for one call.
type plan struct {
	local   []nodemap.Node      // nodes of this relay
	sub     map[string][]string // sub-relay id -> the node ids asked of it (all below it with /all)
	unknown []string            // requested ids not below this relay
}

func (h *Handler) plan(p Params) plan {
	m := h.nodes()
	pl := plan{sub: map[string][]string{}}
	ids := p.Nodes
	if p.All {
		ids = m.Below()
	}
	for _, id := range ids {
		route := m.Route(id)
		switch route.Kind {
		case nodemap.Mine:
			n, _ := m.Node(id)
			pl.local = append(pl.local, n)
		case nodemap.BelowSubRelay:
			pl.sub[route.Via] = append(pl.sub[route.Via], id)
		default:
			pl.unknown = append(pl.unknown, id)
		}
	}
	return pl
}

// tally counts a call's results for its closing log line.
type tally struct {
	mu                 sync.Mutex
	ok, failed, errors int
}

func (t *tally) add(code int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case code == 0:
		t.ok++
		return "ok"
	case code == runoutput.NoExitCode:
		t.errors++
		return "error"
	default:
		t.failed++
		return "failed"
	}
}

// execute runs a call's plan, sending output and result lines to st, and returns when every
// run has ended.
func (h *Handler) execute(ctx context.Context, p Params, pl plan, st *stream, log *slog.Logger) {
	start := time.Now()
	var t tally
	var wg sync.WaitGroup
	output := func(line []byte) {
		if p.KeepOutput {
			st.send(line)
		}
	}
	finish := func(via string, res runoutput.Result) {
		h.metrics.Nodes.With(via, t.add(res.ExitCode)).Inc()
		if res.ExitCode != 0 {
			log.Debug("node run failed", "node", res.Node, "via", via, "exit_code", res.ExitCode, "stderr", res.Stderr)
		}
		st.send(res.Line())
	}
	for _, id := range pl.unknown {
		finish("unknown", runoutput.Result{Node: id, ExitCode: runoutput.NoExitCode, Stderr: "keel-relay: node " + id + " is not below this relay\n"})
	}
	for via, ids := range pl.sub {
		wg.Go(func() { h.runVia(ctx, p, via, ids, output, finish) })
	}
	for _, n := range pl.local {
		select {
		case h.slots <- struct{}{}:
		case <-ctx.Done():
			finish("command", runoutput.Result{Node: n.ID, ExitCode: runoutput.NoExitCode, Stderr: "keel-relay: run cancelled before it started: " + context.Cause(ctx).Error() + "\n"})
			continue
		}
		wg.Go(func() {
			defer func() { <-h.slots }()
			h.metrics.Running.Add(1)
			defer h.metrics.Running.Add(-1)
			via, res := h.runLocal(ctx, n, p.Classes, output)
			finish(via, res)
		})
	}
	wg.Wait()
	log.Info("remote run done", "ok", t.ok, "failed", t.failed, "errors", t.errors, "took", time.Since(start).Round(time.Millisecond))
}

// runLocal runs the agent of a node of this relay: over its edge stream if it has one, else
// with the configured command.
func (h *Handler) runLocal(ctx context.Context, n nodemap.Node, classes []string, output func([]byte)) (string, runoutput.Result) {
	if h.edge != nil {
		prefixed := runoutput.NewLineSplitter(n.ID, output)
		res, ok := h.edge.RunAgent(ctx, n.ID, classes, func(line []byte) { _, _ = prefixed.Write(line) })
		if ok {
			prefixed.Flush()
			res.Node = n.ID
			return "edge", res
		}
	}
	argv := ExpandCommand(h.opts.Command, n.Hostname, n.ID, classes)
	return "command", runCommand(ctx, n.ID, argv, h.opts.Timeout, output)
}

// runVia forwards a call's share to the sub-relay via and reports a result for each node
// it did not answer for.
func (h *Handler) runVia(ctx context.Context, p Params, via string, ids []string, output func([]byte), finish func(string, runoutput.Result)) {
	start := time.Now()
	seen := map[string]bool{}
	var err error
	hop, err := h.hops.SubRelay(via)
	if err == nil {
		_, err = runSubRelay(ctx, hop, p, ids, h.opts.Timeout+time.Minute, func(line []byte) {
			if !runoutput.IsResultLine(line) {
				output(line)
				return
			}
			var res runoutput.Result
			if json.Unmarshal(line, &res) == nil && res.Node != "" {
				seen[res.Node] = true
				finish("sub-relay", res)
				return
			}
			output(line)
		})
	}
	if err == nil && (len(seen) >= len(ids) || (p.Async && !p.KeepOutput)) {
		return // asynchronous without output: the sub-relay accepted and answers nothing more
	}
	reason := "keel-relay: sub-relay " + via + " gave no result for this node\n"
	if err != nil {
		h.log.Warn("remote run through sub-relay failed", "sub_relay", via, "err", err)
		reason = "keel-relay: through sub-relay " + via + ": " + err.Error() + "\n"
	}
	missing := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return seen[id] })
	for _, id := range missing {
		finish("sub-relay", runoutput.Result{Node: id, ExitCode: runoutput.NoExitCode, DurationMS: time.Since(start).Milliseconds(), Stderr: reason})
	}
}
