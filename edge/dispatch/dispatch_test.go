package dispatch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keel-relay/keel/edge/registry"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// daemon answers the commands written to a registered stream, standing in for the far end.
type daemon struct {
	t      *testing.T
	d      *Dispatcher
	mu     sync.Mutex
	cmds   []*edgepb.EdgeCommand
	answer func(cmd *edgepb.InvokeTool) // runs in the writer goroutine
}

func (dm *daemon) send(cmd *edgepb.EdgeCommand) error {
	dm.mu.Lock()
	dm.cmds = append(dm.cmds, cmd)
	dm.mu.Unlock()
	if inv := cmd.GetInvokeTool(); inv != nil && dm.answer != nil {
		go dm.answer(inv)
	}
	return nil
}

func (dm *daemon) cancels() []*edgepb.Cancel {
	dm.mu.Lock()
	defer dm.mu.Unlock()
	var out []*edgepb.Cancel
	for _, c := range dm.cmds {
		if x := c.GetCancel(); x != nil {
			out = append(out, x)
		}
	}
	return out
}

type fixture struct {
	reg *registry.Registry
	d   *Dispatcher
	m   *Metrics
}

func newFixture(t *testing.T, opts Options) *fixture {
	reg := registry.New(10, 16)
	m := NewMetrics(metrics.NewRegistry())
	if opts.Connected == nil {
		opts.Connected = func(n string) bool { _, ok := reg.Get(n); return ok }
	}
	d := New(reg, opts, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(d.Close)
	return &fixture{reg: reg, d: d, m: m}
}

// connect registers a stream for node whose writer sends into dm; the stream is closed
// when the test ends.
func (f *fixture) connect(t *testing.T, node string, dm *daemon) *registry.Stream {
	s, _, err := f.reg.Register(node, "s-"+node, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.Attach(dm.send)
	t.Cleanup(func() {
		s.Close(registry.ErrClosed)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if !s.WaitWriter(ctx) {
			t.Error("stream writer still running")
		}
	})
	return s
}

func stdout(s string) *edgepb.CommandProgress {
	return &edgepb.CommandProgress{Chunk: &edgepb.Chunk{Kind: &edgepb.Chunk_Stdout{Stdout: []byte(s)}}}
}

func okResult(id string, code int32) *edgepb.CommandResult {
	return &edgepb.CommandResult{CommandId: id, Result: &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Ok_{Ok: &edgepb.EdgeResult_Ok{ExitCode: code}}}}
}

func TestInvokeProgressAndResult(t *testing.T) {
	f := newFixture(t, Options{})
	dm := &daemon{t: t, d: f.d}
	dm.answer = func(inv *edgepb.InvokeTool) {
		for _, s := range []string{"a\n", "b\n", "c\n"} {
			p := stdout(s)
			p.CommandId = inv.CommandId
			f.d.Progress(context.Background(), "n1", p)
		}
		f.d.Result("n1", okResult(inv.CommandId, 3))
		if f.d.Result("n1", okResult(inv.CommandId, 4)) {
			t.Error("duplicate result accepted")
		}
	}
	f.connect(t, "n1", dm)
	args, _ := structpb.NewStruct(map[string]any{"classes": "a,b"})
	var got string
	res, err := f.d.Invoke(context.Background(), "n1", "agent-run", args, 5*time.Second, func(c *edgepb.Chunk) { got += string(c.GetStdout()) })
	if err != nil {
		t.Fatal(err)
	}
	if res.GetOk().GetExitCode() != 3 || got != "a\nb\nc\n" {
		t.Fatalf("res=%v output=%q", res, got)
	}
	deadline := time.Now().Add(2 * time.Second)
	for metrics.Value(f.m.Dropped.With("result", "duplicate")) != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if v := metrics.Value(f.m.Dropped.With("result", "duplicate")); v != 1 {
		t.Fatalf("duplicate drops = %v", v)
	}
	if metrics.Value(f.m.Commands.With("ok")) != 1 || f.d.Pending() != 0 {
		t.Fatal("metrics or pending")
	}
}

func TestUnknownResultDropped(t *testing.T) {
	f := newFixture(t, Options{})
	if f.d.Result("n1", okResult("nope", 0)) {
		t.Fatal("unknown result accepted")
	}
	if metrics.Value(f.m.Dropped.With("result", "unknown")) != 1 {
		t.Fatal("unknown not counted")
	}
}

func TestNotConnected(t *testing.T) {
	f := newFixture(t, Options{})
	_, err := f.d.Invoke(context.Background(), "ghost", "agent-run", nil, time.Second, nil)
	if !errors.Is(err, registry.ErrNotConnected) {
		t.Fatalf("err = %v", err)
	}
	if f.d.Pending() != 0 {
		t.Fatal("pending left behind")
	}
}

func TestDeadlineSendsCancelAndLateDropped(t *testing.T) {
	f := newFixture(t, Options{Slack: 10 * time.Millisecond})
	ids := make(chan string, 1)
	dm := &daemon{t: t, d: f.d, answer: func(inv *edgepb.InvokeTool) { ids <- inv.CommandId }}
	f.connect(t, "n1", dm)
	res, err := f.d.Invoke(context.Background(), "n1", "agent-run", nil, 50*time.Millisecond, nil)
	if err != nil || res.GetTimedOut() == nil {
		t.Fatalf("res=%v err=%v, want TimedOut", res, err)
	}
	id := <-ids
	waitFor(t, func() bool { c := dm.cancels(); return len(c) == 1 && c[0].CommandId == id })
	if f.d.Result("n1", okResult(id, 0)) {
		t.Fatal("late result accepted")
	}
	if metrics.Value(f.m.Dropped.With("result", "late")) != 1 {
		t.Fatal("late result not counted")
	}
}

func TestCallerCancelSendsCancel(t *testing.T) {
	f := newFixture(t, Options{})
	dm := &daemon{t: t, d: f.d}
	f.connect(t, "n1", dm)
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() { time.Sleep(30 * time.Millisecond); cancel(errors.New("operator said stop")) }()
	_, err := f.d.Invoke(ctx, "n1", "agent-run", nil, time.Minute, nil)
	if err == nil || err.Error() != "operator said stop" {
		t.Fatalf("err = %v", err)
	}
	waitFor(t, func() bool { c := dm.cancels(); return len(c) == 1 && c[0].Reason == "operator said stop" })
}

func TestPendingSurvivesReconnect(t *testing.T) {
	f := newFixture(t, Options{ReconnectGrace: 200 * time.Millisecond})
	ids := make(chan string, 1)
	old := f.connect(t, "n1", &daemon{t: t, answer: func(inv *edgepb.InvokeTool) { ids <- inv.CommandId }})
	type out struct {
		res *edgepb.EdgeResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := f.d.Invoke(context.Background(), "n1", "agent-run", nil, 10*time.Second, nil)
		done <- out{res, err}
	}()
	id := <-ids
	// The old stream goes away, the node reconnects within the grace, the new stream answers.
	if f.reg.Deregister(old, registry.ErrClosed) {
		f.d.NodeDown("n1")
	}
	f.connect(t, "n1", &daemon{t: t})
	time.Sleep(300 * time.Millisecond) // past the grace: the node is connected, nothing fails
	if !f.d.Result("n1", okResult(id, 0)) {
		t.Fatal("result over the new stream dropped")
	}
	o := <-done
	if o.err != nil || o.res.GetOk() == nil {
		t.Fatalf("res=%v err=%v", o.res, o.err)
	}
}

func TestNodeGoneFailsAfterGrace(t *testing.T) {
	f := newFixture(t, Options{ReconnectGrace: 50 * time.Millisecond})
	ids := make(chan string, 1)
	s := f.connect(t, "n1", &daemon{t: t, answer: func(inv *edgepb.InvokeTool) { ids <- inv.CommandId }})
	go func() {
		<-ids
		if f.reg.Deregister(s, registry.ErrClosed) {
			f.d.NodeDown("n1")
		}
	}()
	start := time.Now()
	_, err := f.d.Invoke(context.Background(), "n1", "agent-run", nil, time.Minute, nil)
	if !errors.Is(err, ErrNodeGone) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("took too long")
	}
}

func TestMaxPendingAndClose(t *testing.T) {
	f := newFixture(t, Options{MaxPending: 1})
	f.connect(t, "n1", &daemon{t: t})
	errc := make(chan error, 1)
	go func() {
		_, err := f.d.Invoke(context.Background(), "n1", "agent-run", nil, time.Minute, nil)
		errc <- err
	}()
	waitFor(t, func() bool { return f.d.Pending() == 1 })
	if _, err := f.d.Invoke(context.Background(), "n1", "agent-run", nil, time.Minute, nil); !errors.Is(err, ErrTooMany) {
		t.Fatalf("err = %v", err)
	}
	f.d.Close()
	if err := <-errc; !errors.Is(err, ErrShutdown) {
		t.Fatalf("err = %v", err)
	}
	if _, err := f.d.Invoke(context.Background(), "n1", "agent-run", nil, time.Minute, nil); !errors.Is(err, ErrShutdown) {
		t.Fatalf("after close: %v", err)
	}
}

func TestBadRequest(t *testing.T) {
	f := newFixture(t, Options{})
	for _, tc := range []struct {
		tool string
		d    time.Duration
	}{{"", time.Second}, {"x", 0}, {"x", -time.Second}} {
		if _, err := f.d.Invoke(context.Background(), "n", tc.tool, nil, tc.d, nil); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%q %s: err = %v", tc.tool, tc.d, err)
		}
	}
}

func TestFleetAndCancel(t *testing.T) {
	f := newFixture(t, Options{})
	nodes := []string{"a", "b", "c", "d"}
	for _, n := range nodes {
		dm := &daemon{t: t}
		if n != "d" { // d never answers
			dm.answer = func(inv *edgepb.InvokeTool) {
				p := stdout("hi from " + n)
				p.CommandId = inv.CommandId
				f.d.Progress(context.Background(), n, p)
				f.d.Result(n, okResult(inv.CommandId, 0))
			}
		}
		f.connect(t, n, dm)
	}
	var mu sync.Mutex
	results := map[string]FleetEvent{}
	chunks := 0
	fl, err := f.d.StartFleet(context.Background(), FleetRequest{Nodes: append(nodes, "ghost"), Tool: "agent-run", Deadline: time.Minute, Parallel: 2}, func(ev FleetEvent) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Done {
			results[ev.Node] = ev
		} else {
			chunks++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(results) == 4 })
	if len(f.d.Fleets()) != 1 {
		t.Fatal("fleet not listed")
	}
	if !f.d.CancelFleet(fl.ID, "enough") {
		t.Fatal("CancelFleet")
	}
	select {
	case <-fl.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("fleet did not end after cancel")
	}
	if chunks != 3 || results["d"].Err == nil || !errors.Is(results["ghost"].Err, registry.ErrNotConnected) {
		t.Fatalf("chunks=%d results=%v", chunks, results)
	}
	for _, n := range []string{"a", "b", "c"} {
		if results[n].Err != nil || results[n].Result.GetOk() == nil {
			t.Errorf("%s: %+v", n, results[n])
		}
	}
	if f.d.CancelFleet(fl.ID, "again") {
		t.Fatal("finished fleet still cancellable")
	}
}

func TestSimpleSends(t *testing.T) {
	f := newFixture(t, Options{})
	dm := &daemon{t: t}
	f.connect(t, "n1", dm)
	for _, err := range []error{
		f.d.PushConfig("n1", []byte("a: 1"), "v1"), f.d.Drain("n1"), f.d.Shutdown("n1", time.Second), f.d.Cancel("n1", "x", "r"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { dm.mu.Lock(); defer dm.mu.Unlock(); return len(dm.cmds) == 4 })
	if err := f.d.Drain("ghost"); !errors.Is(err, registry.ErrNotConnected) {
		t.Fatalf("err = %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
