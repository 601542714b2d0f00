package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/edge/dispatch"
	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// MaxLine bounds one output line; a longer line is cut into several, each prefixed.
const MaxLine = 64 << 10

// maxStderr bounds the stderr kept for a node's result line (its tail is kept).
const maxStderr = 16 << 10

// eventQueue bounds the fleet events waiting for the client; beyond it the fleet's nodes
// wait (back-pressure on their streams) instead of filling memory.
const eventQueue = 256

// NoExitCode is the exit code of a node that produced none (error, deadline, cancel).
const NoExitCode = -1

// Result is one node's outcome, sent as one JSON line after its output: remote run's
// result line, plus the outcome and the error when there is one.
type Result struct {
	Node       string `json:"node"`
	ExitCode   int    `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
	Stderr     string `json:"stderr"`
	Outcome    string `json:"outcome"` // ok, err, timed_out, cancelled, no_outcome, error
	Error      string `json:"error,omitempty"`
}

// Failed reports whether the node did not run the tool to a zero exit code.
func (r Result) Failed() bool { return r.ExitCode != 0 || r.Error != "" }

// result builds a node's result line from its fleet end event.
func result(ev dispatch.FleetEvent, stderr []byte, elapsed time.Duration) Result {
	r := Result{Node: ev.Node, ExitCode: NoExitCode, DurationMS: elapsed.Milliseconds(), Stderr: string(stderr)}
	if ev.Err != nil {
		r.Outcome, r.Error = "error", ev.Err.Error()
		return r
	}
	r.Outcome = dispatch.Outcome(ev.Result)
	switch o := ev.Result.GetOutcome().(type) {
	case *edgepb.EdgeResult_Ok_:
		r.ExitCode = int(o.Ok.GetExitCode())
		if d := o.Ok.GetDuration(); d != nil {
			r.DurationMS = d.AsDuration().Milliseconds()
		}
	case *edgepb.EdgeResult_Err_:
		if c := o.Err.GetExitCode(); c != 0 {
			r.ExitCode = int(c)
		}
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

// nodeOutput holds a node's partial output line and the tail of its stderr.
type nodeOutput struct {
	line   []byte
	stderr []byte
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

// emit writes complete lines of a node's stdout, each prefixed with the node id, cutting
// lines longer than MaxLine; with final, the last partial line too.
func (o *out) emit(node string, n *nodeOutput, final bool) {
	for len(n.line) > 0 {
		var line []byte
		i := bytes.IndexByte(n.line, '\n')
		switch {
		case i >= 0 && i <= MaxLine:
			line, n.line = n.line[:i], n.line[i+1:]
		case len(n.line) >= MaxLine:
			line, n.line = n.line[:MaxLine], n.line[MaxLine:]
		case final:
			line, n.line = n.line, nil
		default:
			return
		}
		o.write([]byte(node + ": "))
		o.write(line)
		o.write([]byte("\n"))
	}
	n.line = nil
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
			n = &nodeOutput{}
			outputs[ev.Node] = n
		}
		if ev.Chunk != nil {
			switch k := ev.Chunk.GetKind().(type) {
			case *edgepb.Chunk_Stdout:
				n.line = append(n.line, k.Stdout...)
				o.emit(ev.Node, n, false)
			case *edgepb.Chunk_Stderr:
				n.stderr = append(n.stderr, k.Stderr...)
				if len(n.stderr) > maxStderr {
					n.stderr = append([]byte(nil), n.stderr[len(n.stderr)-maxStderr:]...)
				}
			}
		}
		if !ev.Done {
			return
		}
		o.emit(ev.Node, n, true)
		res := result(ev, n.stderr, time.Since(f.Started))
		if res.Failed() {
			failed++
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(res) // strings and ints always encode
		o.write(buf.Bytes())
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
