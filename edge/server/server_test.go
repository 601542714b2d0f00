package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keel-relay/keel/edge/fleet"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
	"github.com/keel-relay/keel/internal/wire/ids"
)

func result(id string, code int32) *edgepb.EdgeEvent {
	return &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandResult{CommandResult: &edgepb.CommandResult{
		CommandId: id, Result: &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Ok_{Ok: &edgepb.EdgeResult_Ok{ExitCode: code}}},
	}}}
}

func progress(id, out string) *edgepb.EdgeEvent {
	return &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandProgress{CommandProgress: &edgepb.CommandProgress{
		CommandId: id, Chunk: &edgepb.Chunk{Kind: &edgepb.Chunk_Stdout{Stdout: []byte(out)}},
	}}}
}

type invokeOut struct {
	res    *edgepb.EdgeResult
	err    error
	chunks []string
}

// invokeAsync invokes tool on node in the background.
func (h *harness) invokeAsync(ctx context.Context, node string, deadline time.Duration) <-chan invokeOut {
	out := make(chan invokeOut, 1)
	go func() {
		var o invokeOut
		args, _ := structpb.NewStruct(map[string]any{"classes": []any{"a", "b"}})
		o.res, o.err = h.srv.Invoke(ctx, node, AgentRunTool, args, deadline, func(c *edgepb.Chunk) {
			o.chunks = append(o.chunks, string(c.GetStdout()))
		})
		out <- o
	}()
	return out
}

func TestHappyPath(t *testing.T) {
	h := newHarness(t, nil)
	d := enrolled(t, h)

	// The token: EdDSA by the relay, sub node id, tid, role edge, aud edge-node, cnf bound to the key.
	_, c, err := edgetoken.Parse(d.token)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != d.id || c.Tenant != "acme" || c.Role != "edge" || c.Audience != edgetoken.AudienceNode ||
		c.Confirmation != edgetoken.Thumbprint(d.pub()) || c.Issuer != h.srv.Issuer() || ids.ValidUUID("token id", c.ID) != nil {
		t.Fatalf("claims = %+v", c)
	}
	if ttl := c.Expiry.Sub(c.IssuedAt); ttl != time.Hour {
		t.Fatalf("token ttl = %s", ttl)
	}

	st := d.connect(t)
	if err := st.heartbeat(); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	res := h.invokeAsync(ctx, d.id, 10*time.Second)
	cmd := st.nextCommand(t).GetInvokeTool()
	if cmd == nil || cmd.ToolName != AgentRunTool || ids.ValidUUID("command id", cmd.CommandId) != nil || cmd.Deadline.AsDuration() != 10*time.Second {
		t.Fatalf("command = %v", cmd)
	}
	if got := cmd.Args.GetFields()["classes"].GetListValue().GetValues(); len(got) != 2 {
		t.Fatalf("args = %v", cmd.Args)
	}
	for _, line := range []string{"one\n", "two\n"} {
		if err := st.s.Send(st.sealed(progress(cmd.CommandId, line))); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.s.Send(st.sealed(result(cmd.CommandId, 0))); err != nil {
		t.Fatal(err)
	}
	o := <-res
	if o.err != nil || o.res.GetOk() == nil || len(o.chunks) != 2 || o.chunks[0] != "one\n" {
		t.Fatalf("invoke = %+v", o)
	}

	info, err := h.srv.Daemon(d.id)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Connected || info.Status != fleet.Connected || info.StreamID != st.id || info.Tenant != "acme" ||
		info.Capabilities.GetArch() != "arm64" || info.KeyThumbprint != c.Confirmation {
		t.Fatalf("info = %+v", info)
	}
	list, err := h.srv.Daemons()
	if err != nil || len(list) != 1 {
		t.Fatalf("Daemons = %v, %v", list, err)
	}

}

func TestFlushKeepsTags(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.FlushInterval = 50 * time.Millisecond })
	d := enrolled(t, h)
	if err := h.srv.SetTags(d.id, map[string]string{"env": "prod"}); err != nil {
		t.Fatal(err)
	}
	st := d.connect(t)
	upd := &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CapabilityUpdate{CapabilityUpdate: &edgepb.CapabilityUpdate{
		Capabilities: &edgepb.EdgeCapabilities{Os: "linux", Arch: "riscv64"},
	}}}
	if err := st.s.Send(st.sealed(upd)); err != nil {
		t.Fatal(err)
	}
	if err := st.heartbeat(); err != nil {
		t.Fatal(err)
	}
	hb := time.Now()
	waitFor(t, func() bool {
		row, err := h.store.Daemon(d.id)
		if err != nil {
			t.Fatal(err)
		}
		caps := &edgepb.EdgeCapabilities{}
		_ = proto.Unmarshal(row.Capabilities, caps)
		return caps.GetArch() == "riscv64" && row.LastSeen.After(hb.Add(-time.Second))
	})
	row, _ := h.store.Daemon(d.id)
	if row.Tags["env"] != "prod" {
		t.Fatalf("tags = %v", row.Tags)
	}
}
