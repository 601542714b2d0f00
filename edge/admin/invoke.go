package admin

import (
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/edge/dispatch"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/runoutput"
)

// eventQueue bounds the fleet events waiting for the client; beyond it the fleet's nodes
// wait (back-pressure on their streams) instead of filling memory.
const eventQueue = 256

// Result is one node's outcome, sent as one JSON line after its output: remote run's
// result line (runoutput.Result, whose fields come first), plus the outcome and the error
// when there is one. A node that produced no exit code has runoutput.NoExitCode.
type Result struct {
	runoutput.Result
	Outcome string `json:"outcome"` // ok, err, timed_out, cancelled, no_outcome, error
	Error   string `json:"error,omitempty"`
}

// Line returns the result as a JSON line (runoutput.JSONLine).
func (r Result) Line() []byte { return runoutput.JSONLine(r) }

// Failed reports whether the node did not run the tool to a zero exit code.
func (r Result) Failed() bool { return r.ExitCode != 0 || r.Error != "" }

// result builds a node's result line from its fleet end event.
func result(ev dispatch.FleetEvent, stderr string, elapsed time.Duration) Result {
	r := Result{Result: runoutput.Result{Node: ev.Node, ExitCode: runoutput.NoExitCode, DurationMS: elapsed.Milliseconds(), Stderr: stderr}}
	if ev.Err != nil {
		r.Outcome, r.Error = "error", ev.Err.Error()
		return r
	}
	r.Outcome = dispatch.Outcome(ev.Result)
	r.ExitCode = runoutput.EdgeExitCode(ev.Result)
	switch o := ev.Result.GetOutcome().(type) {
	case *edgepb.EdgeResult_Ok_:
		if d := o.Ok.GetDuration(); d != nil {
			r.DurationMS = d.AsDuration().Milliseconds()
		}
	case *edgepb.EdgeResult_Err_:
		r.Error = o.Err.GetCode()
		if m := o.Err.GetMessage(); m != "" {
			r.Error += ": " + m
		}
		if r.Error == "" {
			r.Error = "failed"
		}
	case *edgepb.EdgeResult_TimedOut_:
		r.Error = "timed out after " + o.TimedOut.GetDeadline().AsDuration().String()
	case *edgepb.EdgeResult_Cancelled_:
		r.Error = "cancelled: " + o.Cancelled.GetReason()
	default:
		r.Error = "the daemon gave no outcome"
	}
	return r
}

// nodeOutput is a node's stdout, cut into prefixed lines, and the tail of its stderr.
type nodeOutput struct {
	stdout *runoutput.LineSplitter
	stderr runoutput.Tail
}

// out writes one invoke's lines to the client; the client going away makes it a sink.
type out struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error
}

func (o *out) write(b []byte) {
	if o.err == nil {
		_, o.err = o.w.Write(b)
	}
}

func (o *out) flush() {
	if o.err == nil {
		o.err = o.rc.Flush()
	}
}

func (h *Handler) invoke(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	inv, err := ParseInvoke(r.Body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	nodes, err := h.targets(r.Context(), inv)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	parallel := inv.Parallel
	if inv.Node != "" {
		parallel = 1
	}
	events := make(chan dispatch.FleetEvent, eventQueue)
	stop := make(chan struct{})
	defer close(stop)
	on := func(ev dispatch.FleetEvent) {
		select {
		case events <- ev:
		case <-stop:
		}
	}
	// The fleet lives as long as the request: a client that goes away cancels it.
	f, err := h.b.StartFleet(r.Context(), dispatch.FleetRequest{
		Nodes: nodes, Tool: inv.Tool, Args: inv.Args, Deadline: inv.Timeout, Parallel: parallel,
	}, on)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("edge invoke", "fleet", f.ID, "tool", inv.Tool, "nodes", len(nodes), "parallel", parallel, "timeout", inv.Timeout)
	w.Header().Set(FleetHeader, f.ID)
	w.Header().Set("Keel-Fleet-Nodes", strconv.Itoa(len(nodes)))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	o := &out{w: w, rc: http.NewResponseController(w)}
	o.flush()

	outputs := map[string]*nodeOutput{}
	failed := 0
	handle := func(ev dispatch.FleetEvent) {
		n := outputs[ev.Node]
		if n == nil {
			n = &nodeOutput{stdout: runoutput.NewLineSplitter(ev.Node, o.write)}
			outputs[ev.Node] = n
		}
		if ev.Chunk != nil {
			switch k := ev.Chunk.GetKind().(type) {
			case *edgepb.Chunk_Stdout:
				_, _ = n.stdout.Write(k.Stdout)
			case *edgepb.Chunk_Stderr:
				_, _ = n.stderr.Write(k.Stderr)
			}
		}
		if !ev.Done {
			return
		}
		n.stdout.Flush()
		res := result(ev, n.stderr.String(), time.Since(f.Started))
		if res.Failed() {
			failed++
		}
		o.write(res.Line())
		delete(outputs, ev.Node)
	}
	for {
		select {
		case ev := <-events:
			handle(ev)
			if len(events) == 0 {
				o.flush()
			}
			continue
		case <-f.Done():
		}
		break
	}
	for len(events) > 0 { // every event was queued before Done closed
		handle(<-events)
	}
	o.flush()
	h.log.Info("edge invoke done", "fleet", f.ID, "nodes", len(nodes), "failed", failed,
		"took", time.Since(f.Started).Round(time.Millisecond), "client_gone", r.Context().Err() != nil || o.err != nil)
}
