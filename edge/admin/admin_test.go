package admin_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/keel-relay/keel/edge/admin"
	"github.com/keel-relay/keel/edge/edgesim"
	"github.com/keel-relay/keel/edge/keys"
	edgeserver "github.com/keel-relay/keel/edge/server"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/storage"
)

// env is a real edge API (real Badger store in a temp dir, the gRPC listener on loopback)
// with the operator API served over HTTP on loopback, and a gRPC client to the edge API.
type env struct {
	t      *testing.T
	admin  string // base URL of the operator API
	client edgepb.NodeClusterServiceClient
	enroll func(label string) string // an enrollment token
}

// edgeOptions are the relay's default edge settings (relay/config's default.yaml), with
// AttestPerMinute raised for tests that enroll many daemons.
func edgeOptions(key ed25519.PrivateKey) edgeserver.Options {
	return edgeserver.Options{
		Listen: "127.0.0.1:0", Role: "relay_coordinator",
		HeartbeatInterval: 30 * time.Second, StaleThreshold: 90 * time.Second,
		TokenTTL: time.Hour, OverlapWindow: time.Minute, AttestPerMinute: 10000,
		MaxPendingChallenges: 1024, ReservedChallenges: 256, ChallengesPerSource: 8, ChallengesPerNetwork: 32,
		HelloTimeout: 10 * time.Second, StreamQueue: 64, FlushInterval: 30 * time.Second,
		DrainGrace: 10 * time.Second, MaxStreams: 1000, AgentRunTimeout: 5 * time.Minute,
		SigningKey: key, Issuer: keys.Issuer("root"),
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := storage.Open(storage.DefaultOptions(t.TempDir()), log)
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := edgeserver.New(edgeOptions(key), store, metrics.NewRegistry(), log)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	api := httptest.NewServer(admin.New(admin.ServerBackend{S: srv}, log))
	t.Cleanup(func() {
		api.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	conn, err := grpc.NewClient(srv.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &env{t: t, admin: api.URL, client: edgepb.NewNodeClusterServiceClient(conn), enroll: func(label string) string {
		tok, _, err := edgeserver.EnrollmentToken(key, keys.Issuer("root"), "acme", label, 15*time.Minute, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}}
}

func caps(labels map[string]string) *edgepb.EdgeCapabilities {
	return &edgepb.EdgeCapabilities{Os: "linux", Arch: "arm64", LocalTools: []string{"agent-run", "echo"}, CustomLabels: labels}
}

// daemon enrolls a simulated daemon.
func (e *env) daemon(label string, c *edgepb.EdgeCapabilities) *edgesim.Identity {
	e.t.Helper()
	id, err := edgesim.NewIdentity()
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := id.Enroll(ctx, e.client, e.enroll(label), c); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// connect runs the daemon's stream until the test ends (or stop); its end is sent on the
// returned channel. It waits until the relay lists the daemon as connected.
func (e *env) connect(id *edgesim.Identity, opts edgesim.Options) (ended <-chan error, stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- id.Run(ctx, e.client, opts) }()
	e.t.Cleanup(cancel)
	e.waitStatus(id.NodeID, admin.StatusConnected)
	return ch, cancel
}

func (e *env) url(path string) string { return e.admin + path }

// call sends a request to the admin API and returns the status and the body.
func (e *env) call(method, path, body string) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url(path), rd)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) show(id string) admin.Daemon {
	e.t.Helper()
	code, body := e.call(http.MethodGet, "/edge/daemons/"+id, "")
	if code != http.StatusOK {
		e.t.Fatalf("show %s: %d %s", id, code, body)
	}
	var d admin.Daemon
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) waitStatus(id, want string) admin.Daemon {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := e.show(id)
		if d.Status == want {
			return d
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("daemon %s status %q, want %q", id, d.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// invoke posts an invoke and returns the fleet id, the output lines and the result lines.
func (e *env) invoke(body string) (fleet string, out []string, results map[string]admin.Result) {
	e.t.Helper()
	resp, err := http.Post(e.url("/edge/invoke"), "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("invoke: %s %s", resp.Status, b)
	}
	fleet, out, results = readInvoke(e.t, resp)
	return fleet, out, results
}

func readInvoke(t *testing.T, resp *http.Response) (fleet string, out []string, results map[string]admin.Result) {
	t.Helper()
	fleet = resp.Header.Get(admin.FleetHeader)
	if admin.ValidFleetID(fleet) != nil {
		t.Fatalf("fleet header %q", fleet)
	}
	results = map[string]admin.Result{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "{") {
			var r admin.Result
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("result line %q: %v", line, err)
			}
			if _, dup := results[r.Node]; dup {
				t.Fatalf("two result lines for %s", r.Node)
			}
			results[r.Node] = r
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return fleet, out, results
}

func TestListShowTag(t *testing.T) {
	e := newEnv(t)
	a := e.daemon("web-1", caps(map[string]string{"site": "par"}))
	b := e.daemon("web-2", caps(nil))
	_, stopA := e.connect(a, edgesim.Options{Capabilities: caps(map[string]string{"site": "par"})})

	code, body := e.call(http.MethodGet, "/edge/daemons", "")
	if code != http.StatusOK {
		t.Fatalf("list: %d %s", code, body)
	}
	var ds []admin.Daemon
	if err := json.Unmarshal([]byte(body), &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("%d daemons listed, want 2: %s", len(ds), body)
	}
	byID := map[string]admin.Daemon{}
	for _, d := range ds {
		byID[d.NodeID] = d
	}
	da, db := byID[a.NodeID], byID[b.NodeID]
	if da.Status != admin.StatusConnected || db.Status != admin.StatusDisconnected {
		t.Fatalf("statuses %q %q, want connected, disconnected", da.Status, db.Status)
	}
	if da.Tenant != "acme" || da.Label != "web-1" || da.LastSeen == nil || da.Capabilities.OS != "linux" ||
		da.Capabilities.Arch != "arm64" || strings.Join(da.Capabilities.Tools, ",") != "agent-run,echo" ||
		da.Capabilities.Labels["site"] != "par" || len(da.Tags) != 0 {
		t.Fatalf("daemon a: %+v", da)
	}

	// Tags are replaced by the operator, never by the daemon.
	code, body = e.call(http.MethodPut, "/edge/daemons/"+a.NodeID+"/tags", `{"tags":{"role":"web","env":"prod"}}`)
	if code != http.StatusOK || !strings.Contains(body, `"role": "web"`) {
		t.Fatalf("set tags: %d %s", code, body)
	}
	stopA()
	e.waitStatus(a.NodeID, admin.StatusDisconnected)
	newCaps := caps(map[string]string{"site": "lyon", "role": "db"})
	e.connect(a, edgesim.Options{Capabilities: newCaps})
	var d admin.Daemon
	for deadline := time.Now().Add(10 * time.Second); ; {
		d = e.show(a.NodeID)
		if d.Capabilities.Labels["site"] == "lyon" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d.Capabilities.Labels["site"] != "lyon" || d.Capabilities.Labels["role"] != "db" {
		t.Fatalf("capabilities not updated by the Hello: %+v", d.Capabilities)
	}
	if len(d.Tags) != 2 || d.Tags["role"] != "web" || d.Tags["env"] != "prod" {
		t.Fatalf("tags changed by the daemon: %v", d.Tags)
	}
	code, body = e.call(http.MethodPut, "/edge/daemons/"+a.NodeID+"/tags", `{"tags":{}}`)
	if code != http.StatusOK || len(e.show(a.NodeID).Tags) != 0 {
		t.Fatalf("clear tags: %d %s", code, body)
	}

	// Bad requests get clear 4xx answers.
	unknown := "0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4b"
	for _, tc := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{http.MethodGet, "/edge/daemons/node-1", "", http.StatusBadRequest, "not a UUID"},
		{http.MethodGet, "/edge/daemons/" + unknown, "", http.StatusNotFound, "not found"},
		{http.MethodPut, "/edge/daemons/" + unknown + "/tags", `{"tags":{"a":"b"}}`, http.StatusNotFound, "not found"},
		{http.MethodPut, "/edge/daemons/" + a.NodeID + "/tags", `{"tags":{"a b":"c"}}`, http.StatusBadRequest, "only letters"},
		{http.MethodPut, "/edge/daemons/" + a.NodeID + "/tags", `{"tags":`, http.StatusBadRequest, "JSON"},
		{http.MethodPut, "/edge/daemons/" + a.NodeID + "/tags", `{"tags":{"a":"` + strings.Repeat("x", admin.MaxBody) + `"}}`, http.StatusRequestEntityTooLarge, "larger"},
		{http.MethodPost, "/edge/daemons/" + unknown + "/revoke", "", http.StatusNotFound, "not found"},
		{http.MethodPost, "/edge/daemons/" + b.NodeID + "/drain", "", http.StatusConflict, "no live stream"},
		{http.MethodPost, "/edge/fleet/" + unknown + "/cancel", "", http.StatusNotFound, "no running fleet"},
		{http.MethodPost, "/edge/fleet/x/cancel", "", http.StatusBadRequest, "not a UUID"},
		{http.MethodPost, "/edge/invoke", `{"tags":{"nobody":"here"},"tool":"echo"}`, http.StatusNotFound, "no enrolled"},
		{http.MethodPost, "/edge/invoke", `{"node":"` + unknown + `","tool":"echo"}`, http.StatusNotFound, "not found"},
		{http.MethodPost, "/edge/invoke", `{"tool":"echo"}`, http.StatusBadRequest, "say where"},
		{http.MethodDelete, "/edge/daemons", "", http.StatusMethodNotAllowed, ""},
		{http.MethodGet, "/edge/nothing", "", http.StatusNotFound, "no edge admin route"},
	} {
		code, body := e.call(tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.msg)
		}
	}
}

func TestRevoke(t *testing.T) {
	e := newEnv(t)
	a := e.daemon("a", caps(nil))
	ended, _ := e.connect(a, edgesim.Options{})
	code, body := e.call(http.MethodPost, "/edge/daemons/"+a.NodeID+"/revoke", "")
	if code != http.StatusOK || !strings.Contains(body, `"status": "revoked"`) {
		t.Fatalf("revoke: %d %s", code, body)
	}
	select {
	case err := <-ended:
		if err == nil || !strings.Contains(err.Error(), "revoked") {
			t.Fatalf("stream ended with %v, want a revocation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("revoked daemon's stream still open")
	}
	// Its token is refused on reconnect, and it cannot get a new one.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.Run(ctx, e.client, edgesim.Options{}); err == nil {
		t.Fatal("revoked daemon reconnected")
	}
	if err := a.Enroll(ctx, e.client, "", caps(nil)); err == nil {
		t.Fatal("revoked daemon refreshed its token")
	}
	if d := e.show(a.NodeID); d.Status != admin.StatusRevoked || d.RevokedAt == nil {
		t.Fatalf("after revoke: %+v", d)
	}
	code, body = e.call(http.MethodPost, "/edge/invoke", `{"node":"`+a.NodeID+`","tool":"echo"}`)
	if code != http.StatusConflict {
		t.Fatalf("invoke on a revoked daemon: %d %s", code, body)
	}
}

func TestInvokeOneNode(t *testing.T) {
	e := newEnv(t)
	a := e.daemon("a", caps(nil))
	var got atomic.Pointer[edgepb.InvokeTool]
	e.connect(a, edgesim.Options{Handler: func(_ context.Context, inv *edgepb.InvokeTool, progress func(*edgepb.Chunk)) *edgepb.EdgeResult {
		got.Store(inv)
		progress(&edgepb.Chunk{Kind: &edgepb.Chunk_Stdout{Stdout: []byte("hello\nwor")}})
		progress(&edgepb.Chunk{Kind: &edgepb.Chunk_Stderr{Stderr: []byte("careful\n")}})
		progress(&edgepb.Chunk{Kind: &edgepb.Chunk_Stdout{Stdout: []byte("ld\nno newline")}})
		return &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Ok_{Ok: &edgepb.EdgeResult_Ok{ExitCode: 3, Duration: durationpb.New(42 * time.Millisecond)}}}
	}})
	_, out, results := e.invoke(`{"node":"` + a.NodeID + `","tool":"agent-run","args":{"classes":"a,b"},"timeout":"30s"}`)
	want := []string{a.NodeID + ":hello", a.NodeID + ":world", a.NodeID + ":no newline"}
	if strings.Join(out, "\n") != strings.Join(want, "\n") {
		t.Fatalf("output %q, want %q", out, want)
	}
	r, ok := results[a.NodeID]
	if !ok || len(results) != 1 || r.ExitCode != 3 || r.DurationMS != 42 || r.Stderr != "careful\n" || r.Outcome != "ok" || !r.Failed() {
		t.Fatalf("results %+v", results)
	}
	inv := got.Load()
	if inv.GetToolName() != "agent-run" || inv.GetArgs().GetFields()["classes"].GetStringValue() != "a,b" || inv.GetDeadline().AsDuration() != 30*time.Second {
		t.Fatalf("daemon got %v", inv)
	}
}

func TestFleetInvokeParallel(t *testing.T) {
	e := newEnv(t)
	const n, parallel = 20, 4
	var running, peak, calls atomic.Int64
	handler := func(ctx context.Context, inv *edgepb.InvokeTool, progress func(*edgepb.Chunk)) *edgepb.EdgeResult {
		cur := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
		}
		calls.Add(1)
		progress(&edgepb.Chunk{Kind: &edgepb.Chunk_Stdout{Stdout: []byte("done\n")}})
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
		return edgesim.Echo(ctx, inv, progress)
	}
	ids := map[string]bool{}
	for i := range n {
		d := e.daemon(fmt.Sprintf("d%02d", i), caps(nil))
		ids[d.NodeID] = true
		e.connect(d, edgesim.Options{Handler: handler})
		if code, body := e.call(http.MethodPut, "/edge/daemons/"+d.NodeID+"/tags", `{"tags":{"role":"web"}}`); code != http.StatusOK {
			t.Fatalf("tag: %d %s", code, body)
		}
	}
	// An untagged daemon is not selected.
	other := e.daemon("other", caps(nil))
	e.connect(other, edgesim.Options{Handler: handler})

	_, out, results := e.invoke(fmt.Sprintf(`{"tags":{"role":"web"},"tool":"echo","parallel":%d,"timeout":"1m"}`, parallel))
	if len(results) != n || len(out) != n || calls.Load() != n {
		t.Fatalf("%d results, %d output lines, %d calls; want %d each", len(results), len(out), calls.Load(), n)
	}
	for node, r := range results {
		if !ids[node] || r.Failed() || r.Outcome != "ok" {
			t.Errorf("result %+v", r)
		}
	}
	if p := peak.Load(); p > parallel || p < 2 {
		t.Fatalf("at most %d ran at once, want between 2 and %d", p, parallel)
	}
}

func TestFleetCancel(t *testing.T) {
	e := newEnv(t)
	const n = 6
	var started, cancels atomic.Int64
	handler := func(ctx context.Context, inv *edgepb.InvokeTool, _ func(*edgepb.Chunk)) *edgepb.EdgeResult {
		started.Add(1)
		<-ctx.Done()
		reason := context.Cause(ctx).Error()
		return &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Cancelled_{Cancelled: &edgepb.EdgeResult_Cancelled{Reason: reason}}}
	}
	onCmd := func(c *edgepb.EdgeCommand) {
		if c.GetCancel() != nil {
			cancels.Add(1)
		}
	}
	for i := range n {
		d := e.daemon(fmt.Sprintf("c%d", i), caps(map[string]string{"pool": "slow"}))
		e.connect(d, edgesim.Options{Capabilities: caps(map[string]string{"pool": "slow"}), Handler: handler, OnCommand: onCmd})
	}
	resp, err := http.Post(e.url("/edge/invoke"), "application/json", strings.NewReader(`{"labels":{"pool":"slow"},"tool":"sleep","parallel":6,"timeout":"10m"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	fleet := resp.Header.Get(admin.FleetHeader)
	for deadline := time.Now().Add(20 * time.Second); started.Load() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d nodes started", started.Load(), n)
		}
	}
	code, body := e.call(http.MethodGet, "/edge/fleet", "")
	if code != http.StatusOK || !strings.Contains(body, fleet) {
		t.Fatalf("fleet list: %d %s", code, body)
	}
	if code, body := e.call(http.MethodPost, "/edge/fleet/"+fleet+"/cancel", ""); code != http.StatusOK {
		t.Fatalf("cancel: %d %s", code, body)
	}
	_, _, results := readInvoke(t, resp)
	if len(results) != n {
		t.Fatalf("%d results, want %d", len(results), n)
	}
	for _, r := range results {
		if !r.Failed() {
			t.Errorf("cancelled node succeeded: %+v", r)
		}
	}
	// The fleet's results are the dispatcher's, given as soon as it cancels; the Cancel
	// commands reach the daemons through their streams' writers a moment later.
	for deadline := time.Now().Add(10 * time.Second); cancels.Load() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d daemons got Cancel, want %d", cancels.Load(), n)
		}
	}
	if code, _ := e.call(http.MethodPost, "/edge/fleet/"+fleet+"/cancel", ""); code != http.StatusNotFound {
		t.Fatalf("cancel of a finished fleet: %d, want 404", code)
	}
}

func TestDrainAndPushConfig(t *testing.T) {
	e := newEnv(t)
	type seen struct {
		mu   sync.Mutex
		cmds []*edgepb.EdgeCommand
	}
	watch := func(s *seen) func(*edgepb.EdgeCommand) {
		return func(c *edgepb.EdgeCommand) { s.mu.Lock(); s.cmds = append(s.cmds, c); s.mu.Unlock() }
	}
	count := func(s *seen, pred func(*edgepb.EdgeCommand) bool) int {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := 0
		for _, c := range s.cmds {
			if pred(c) {
				n++
			}
		}
		return n
	}
	isDrain := func(c *edgepb.EdgeCommand) bool { return c.GetDrain() != nil }
	var sa, sb seen
	a, b := e.daemon("a", caps(nil)), e.daemon("b", caps(nil))
	e.connect(a, edgesim.Options{OnCommand: watch(&sa)})
	e.connect(b, edgesim.Options{OnCommand: watch(&sb)})
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	if code, body := e.call(http.MethodPost, "/edge/daemons/"+a.NodeID+"/drain", ""); code != http.StatusOK {
		t.Fatalf("drain one: %d %s", code, body)
	}
	waitFor("a's Drain", func() bool { return count(&sa, isDrain) == 1 })
	if count(&sb, isDrain) != 0 {
		t.Fatal("b drained by a drain of a")
	}
	code, body := e.call(http.MethodPost, "/edge/drain", "")
	if code != http.StatusOK || !strings.Contains(body, `"drained": 2`) {
		t.Fatalf("drain all: %d %s", code, body)
	}
	waitFor("both Drains", func() bool { return count(&sa, isDrain) == 2 && count(&sb, isDrain) == 1 })

	code, body = e.call(http.MethodPost, "/edge/daemons/"+b.NodeID+"/config", `{"delta":{"log":{"level":"debug"}},"version":"v7"}`)
	if code != http.StatusOK {
		t.Fatalf("push config: %d %s", code, body)
	}
	waitFor("PushConfig", func() bool {
		return count(&sb, func(c *edgepb.EdgeCommand) bool {
			pc := c.GetPushConfig()
			return pc != nil && pc.GetVersion() == "v7" && bytes.Equal(pc.GetConfigDelta(), []byte(`{"log":{"level":"debug"}}`))
		}) == 1
	})
	if code, body := e.call(http.MethodPost, "/edge/daemons/"+b.NodeID+"/config", `{"delta":{}}`); code != http.StatusBadRequest {
		t.Fatalf("config without version: %d %s", code, body)
	}
}
