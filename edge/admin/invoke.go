package admin

import (
	"context"
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

// invoke runs a tool on the daemons an invoke request targets and streams their output:
// parse the request, select the targets, start the fleet with bounded parallelism, answer
// with the fleet's headers, stream each node's lines and result, then log the outcome.
func (h *Handler) invoke(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	inv, nodes, err := h.invokeTargets(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	run, err := h.startRun(r.Context(), inv, nodes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer run.close()
	o := answerFleet(w, run.f, len(nodes))
	failed := run.stream(o)
	h.log.Info("edge invoke done", "fleet", run.f.ID, "nodes", len(nodes), "failed", failed,
		"took", time.Since(run.f.Started).Round(time.Millisecond), "client_gone", r.Context().Err() != nil || o.err != nil)
}

// invokeTargets parses the invoke request of r and selects the daemons it targets.
func (h *Handler) invokeTargets(r *http.Request) (Invoke, []string, error) {
	inv, err := ParseInvoke(r.Body)
	if err != nil {
		return Invoke{}, nil, err
	}
	nodes, err := h.targets(r.Context(), inv)
	if err != nil {
		return Invoke{}, nil, err
	}
	return inv, nodes, nil
}

// fleetRun is one invoke's running fleet and the queue of its events waiting for the client.
type fleetRun struct {
	f      *dispatch.Fleet
	events chan dispatch.FleetEvent
	stop   chan struct{} // closed when the handler returns: the fleet's nodes stop waiting
}

// startRun starts the fleet of inv on nodes, at most inv.Parallel nodes at once (one for a
// single node). The fleet lives as long as ctx, the request's: a client that goes away
// cancels it. The caller closes the run when it stops reading its events.
func (h *Handler) startRun(ctx context.Context, inv Invoke, nodes []string) (*fleetRun, error) {
	parallel := inv.Parallel
	if inv.Node != "" {
		parallel = 1
	}
	run := &fleetRun{events: make(chan dispatch.FleetEvent, eventQueue), stop: make(chan struct{})}
	f, err := h.b.StartFleet(ctx, dispatch.FleetRequest{
		Nodes: nodes, Tool: inv.Tool, Args: inv.Args, Deadline: inv.Timeout, Parallel: parallel,
	}, run.queue)
	if err != nil {
		run.close()
		return nil, err
	}
	run.f = f
	h.log.Info("edge invoke", "fleet", f.ID, "tool", inv.Tool, "nodes", len(nodes), "parallel", parallel, "timeout", inv.Timeout)
	return run, nil
}

// queue hands one fleet event to the handler, waiting for room in the queue
// (back-pressure) unless the handler has returned.
func (run *fleetRun) queue(ev dispatch.FleetEvent) {
	select {
	case run.events <- ev:
	case <-run.stop:
	}
}

// close releases the fleet's nodes still waiting to queue an event.
func (run *fleetRun) close() { close(run.stop) }

// answerFleet writes the invoke's status and headers (the fleet id and its node count) and
// flushes them, so the client knows the fleet before its first line.
func answerFleet(w http.ResponseWriter, f *dispatch.Fleet, nodes int) *out {
	w.Header().Set(FleetHeader, f.ID)
	w.Header().Set("Keel-Fleet-Nodes", strconv.Itoa(nodes))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	o := &out{w: w, rc: http.NewResponseController(w)}
	o.flush()
	return o
}

// stream writes the fleet's events to o until the fleet is done, flushing whenever the queue
// runs empty, and returns how many nodes failed.
func (run *fleetRun) stream(o *out) int {
	lines := &nodeLines{o: o, started: run.f.Started, outputs: map[string]*nodeOutput{}}
	for {
		select {
		case ev := <-run.events:
			lines.handle(ev)
			if len(run.events) == 0 {
				o.flush()
			}
			continue
		case <-run.f.Done():
		}
		break
	}
	for len(run.events) > 0 { // every event was queued before Done closed
		lines.handle(<-run.events)
	}
	o.flush()
	return lines.failed
}

// nodeLines turns fleet events into the invoke's lines: each node's stdout as prefixed
// lines, then its result line.
type nodeLines struct {
	o       *out
	started time.Time
	outputs map[string]*nodeOutput // the nodes that have not ended yet
	failed  int                    // the nodes whose result failed
}

// handle writes what one event adds: its chunk of output and, when the node is done, the
// rest of its stdout and its result line.
func (l *nodeLines) handle(ev dispatch.FleetEvent) {
	n := l.outputs[ev.Node]
	if n == nil {
		n = &nodeOutput{stdout: runoutput.NewLineSplitter(ev.Node, l.o.write)}
		l.outputs[ev.Node] = n
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
	res := result(ev, n.stderr.String(), time.Since(l.started))
	if res.Failed() {
		l.failed++
	}
	l.o.write(res.Line())
	delete(l.outputs, ev.Node)
}
