package server

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/keel-relay/keel/edge/fleet"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/runoutput"
)

// TestReconnectRace: a daemon reconnects while its old stream is still open (it closes
// late); the new stream stays registered and the commands sent over the old one are
// answered over the new one.
func TestReconnectRace(t *testing.T) {
	h := newHarness(t, nil)
	d := enrolled(t, h)
	old := d.connect(t)
	res := h.invokeAsync(ctxT(t), d.id, time.Minute)
	cmd := old.nextCommand(t).GetInvokeTool()

	// The new stream says Hello while the old one is still up.
	fresh := d.connect(t)
	// The old one is closed by the relay (replaced) and its handler returns late.
	if got := old.endCode(t); got != codes.Aborted {
		t.Fatalf("old stream ended with %s, want Aborted", got)
	}
	time.Sleep(50 * time.Millisecond)
	s, ok := h.srv.reg.Get(d.id)
	if !ok || s.StreamID != fresh.id {
		t.Fatal("the old stream's close evicted the new one")
	}
	// The result of the command sent over the old stream arrives over the new one.
	if err := fresh.s.Send(fresh.sealed(result(cmd.CommandId, 7))); err != nil {
		t.Fatal(err)
	}
	o := <-res
	if o.err != nil || o.res.GetOk().GetExitCode() != 7 {
		t.Fatalf("invoke = %+v", o)
	}
	// And the new stream keeps working.
	if err := fresh.heartbeat(); err != nil {
		t.Fatal(err)
	}
	res = h.invokeAsync(ctxT(t), d.id, time.Minute)
	cmd = fresh.nextCommand(t).GetInvokeTool()
	_ = fresh.s.Send(fresh.sealed(result(cmd.CommandId, 0)))
	if o := <-res; o.err != nil {
		t.Fatal(o.err)
	}
}

// TestReconnectAfterClose: the old stream is gone before the daemon reconnects; its pending
// command survives if the node comes back within the reconnect grace, and fails otherwise.
func TestReconnectAfterClose(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.ReconnectGrace = 500 * time.Millisecond })
	d := enrolled(t, h)
	st := d.connect(t)
	res := h.invokeAsync(ctxT(t), d.id, time.Minute)
	cmd := st.nextCommand(t).GetInvokeTool()
	st.cancel()
	waitFor(t, func() bool { return !h.srv.Connected(d.id) })
	st = d.connect(t)
	time.Sleep(700 * time.Millisecond)
	if err := st.s.Send(st.sealed(result(cmd.CommandId, 0))); err != nil {
		t.Fatal(err)
	}
	if o := <-res; o.err != nil {
		t.Fatal(o.err)
	}

	res = h.invokeAsync(ctxT(t), d.id, time.Minute)
	_ = st.nextCommand(t)
	st.cancel()
	start := time.Now()
	if o := <-res; o.err == nil {
		t.Fatal("command of a node that never came back did not fail")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("took too long to fail")
	}
}

func TestInvokeDeadlineSendsCancel(t *testing.T) {
	h := newHarness(t, nil)
	d := enrolled(t, h)
	st := d.connect(t)
	res := h.invokeAsync(ctxT(t), d.id, 100*time.Millisecond)
	cmd := st.nextCommand(t).GetInvokeTool()
	c := st.nextCommand(t).GetCancel()
	if c == nil || c.CommandId != cmd.CommandId {
		t.Fatalf("got %v, want Cancel of %s", c, cmd.CommandId)
	}
	if o := <-res; o.err != nil || o.res.GetTimedOut() == nil {
		t.Fatalf("invoke = %+v", o)
	}
	// The late result is dropped; the stream survives.
	_ = st.s.Send(st.sealed(result(cmd.CommandId, 0)))
	if err := st.heartbeat(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return strings.Contains(h.metrics(), `keel_edge_dropped_total{kind="result",reason="late"} 1`)
	})
}

func TestRunAgent(t *testing.T) {
	h := newHarness(t, nil)
	d := enrolled(t, h)
	run := h.srv.Runner()
	if _, ok := run.RunAgent(ctxT(t), d.id, nil, func([]byte) {}); ok {
		t.Fatal("RunAgent ok for a node without stream")
	}
	st := d.connect(t)
	for _, tc := range []struct {
		name     string
		outcome  *edgepb.EdgeResult
		wantCode int
	}{
		{"ok", &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Ok_{Ok: &edgepb.EdgeResult_Ok{ExitCode: 0}}}, 0},
		{"err", &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Err_{Err: &edgepb.EdgeResult_Err{Code: "agent", Message: "boom", ExitCode: 3}}}, 3},
		{"err without exit code", &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Err_{Err: &edgepb.EdgeResult_Err{Code: "exec-failed", Message: "cannot run"}}}, runoutput.NoExitCode},
		{"timed out", &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_TimedOut_{TimedOut: &edgepb.EdgeResult_TimedOut{}}}, runoutput.NoExitCode},
		{"cancelled", &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Cancelled_{Cancelled: &edgepb.EdgeResult_Cancelled{Reason: "x"}}}, runoutput.NoExitCode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var lines []string
			type out struct {
				res runoutput.Result
				ok  bool
			}
			done := make(chan out, 1)
			go func() {
				r, ok := run.RunAgent(ctxT(t), d.id, []string{"c1", "c2"}, func(l []byte) {
					mu.Lock()
					lines = append(lines, string(l))
					mu.Unlock()
				})
				done <- out{r, ok}
			}()
			cmd := st.nextCommand(t).GetInvokeTool()
			classes := cmd.GetArgs().GetFields()["classes"].GetListValue().GetValues()
			if cmd.ToolName != AgentRunTool || len(classes) != 2 || classes[1].GetStringValue() != "c2" {
				t.Fatalf("command = %v", cmd)
			}
			for _, chunk := range []string{"line 1\nli", "ne 2\n", "tail"} {
				_ = st.s.Send(st.sealed(progress(cmd.CommandId, chunk)))
			}
			_ = st.s.Send(st.sealed(&edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandResult{CommandResult: &edgepb.CommandResult{CommandId: cmd.CommandId, Result: tc.outcome}}}))
			o := <-done
			if !o.ok || o.res.ExitCode != tc.wantCode || o.res.Node != d.id {
				t.Fatalf("result = %+v ok=%v", o.res, o.ok)
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(lines, "") != "line 1\nline 2\ntail\n" || len(lines) != 3 {
				t.Fatalf("lines = %q", lines)
			}
		})
	}
	t.Run("caller cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctxT(t))
		done := make(chan runoutput.Result, 1)
		go func() {
			r, _ := run.RunAgent(ctx, d.id, nil, func([]byte) {})
			done <- r
		}()
		_ = st.nextCommand(t)
		cancel()
		if c := st.nextCommand(t).GetCancel(); c == nil {
			t.Fatal("no Cancel sent")
		}
		if r := <-done; r.ExitCode != runoutput.NoExitCode {
			t.Fatalf("result = %+v", r)
		}
	})
}

func TestFleetBySelector(t *testing.T) {
	h := newHarness(t, nil)
	var streams []*stream
	var ds []*daemon
	for i := range 3 {
		d := enrolled(t, h)
		ds = append(ds, d)
		streams = append(streams, d.connect(t))
		if i < 2 {
			if err := h.srv.SetTags(d.id, map[string]string{"env": "prod"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	nodes, err := h.srv.Select(ctxT(t), fleet.Selector{Tags: map[string]string{"env": "prod"}})
	if err != nil || len(nodes) != 2 {
		t.Fatalf("Select = %v, %v", nodes, err)
	}
	// Each tagged daemon answers its command.
	for i := range 2 {
		go func() {
			st := streams[i]
			cmd, err := st.s.Recv()
			if err != nil {
				return
			}
			id := cmd.GetInvokeTool().GetCommandId()
			_ = st.s.Send(st.sealed(progress(id, "hello from "+ds[i].id+"\n")))
			_ = st.s.Send(st.sealed(result(id, 0)))
		}()
	}
	var mu sync.Mutex
	ends := map[string]bool{}
	chunks := 0
	f, err := h.srv.StartFleet(ctxT(t), FleetRequest{Selector: fleet.Selector{Tags: map[string]string{"env": "prod"}, Labels: map[string]string{"site": "paris"}}, Tool: AgentRunTool, Deadline: 10 * time.Second, Parallel: 8},
		func(ev fleetEvent) {
			mu.Lock()
			defer mu.Unlock()
			if ev.Done {
				ends[ev.Node] = ev.Err == nil && ev.Result.GetOk() != nil
			} else {
				chunks++
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("fleet did not finish")
	}
	if len(ends) != 2 || !ends[ds[0].id] || !ends[ds[1].id] || chunks != 2 {
		t.Fatalf("ends = %v chunks = %d", ends, chunks)
	}
	if _, err := h.srv.StartFleet(ctxT(t), FleetRequest{Selector: fleet.Selector{Tags: map[string]string{"env": "none"}}, Tool: AgentRunTool, Deadline: time.Second}, func(fleetEvent) {}); err == nil {
		t.Fatal("empty selection accepted")
	}
	if n := h.srv.DrainAll(); n != 3 {
		t.Fatalf("DrainAll = %d", n)
	}
}
