//go:build unix

package edged_test

// End-to-end tests against the real relay edge server (edge/server) on 127.0.0.1 over a
// real Badger store: enrollment, the stream, tools invoked from the relay, key rotation,
// relay restarts, and 50 daemons reconnecting with jitter.

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/agent/edged"
	"github.com/keel-relay/keel/edge/keys"
	"github.com/keel-relay/keel/edge/server"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
	relayconfig "github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/storage"
)

// ---- log records ----

// record is one log record with its attributes (those of With included).
type record struct {
	at    time.Time
	msg   string
	attrs map[string]any
}

// recorder keeps the records of every logger made from it.
type recorder struct {
	mu      sync.Mutex
	records []record
	echo    bool
}

type recHandler struct {
	r     *recorder
	attrs []slog.Attr
}

func newRecorder() *recorder { return &recorder{echo: os.Getenv("EDGED_TEST_LOG") != ""} }

func (r *recorder) logger() *slog.Logger { return slog.New(&recHandler{r: r}) }

func (h *recHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recHandler) Handle(_ context.Context, rec slog.Record) error {
	m := make(map[string]any, len(h.attrs)+rec.NumAttrs())
	for _, a := range h.attrs {
		m[a.Key] = a.Value.Any()
	}
	rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	h.r.mu.Lock()
	h.r.records = append(h.r.records, record{at: rec.Time, msg: rec.Message, attrs: m})
	h.r.mu.Unlock()
	if h.r.echo {
		fmt.Fprintf(os.Stderr, "%s %s %s %v\n", rec.Time.Format("15:04:05.000"), rec.Level, rec.Message, m)
	}
	return nil
}

func (h *recHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recHandler{r: h.r, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h *recHandler) WithGroup(string) slog.Handler { return h }

// find returns the records with message msg (and attribute key=val when key is set).
func (r *recorder) find(msg, key string, val any) []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []record
	for _, rec := range r.records {
		if rec.msg == msg && (key == "" || rec.attrs[key] == val) {
			out = append(out, rec)
		}
	}
	return out
}

// ---- the relay ----

// testRelay is the real edge server with a real store; it can be stopped and started again
// on the same address, store and signing key.
type testRelay struct {
	t      *testing.T
	dir    string
	key    ed25519.PrivateKey
	addr   string
	srv    *server.Server
	store  *storage.Store
	served chan error
	mod    func(*server.Options)
}

func startRelay(t *testing.T) *testRelay { return startRelayWith(t, nil) }

func startRelayWith(t *testing.T, mod func(*server.Options)) *testRelay {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &testRelay{t: t, dir: t.TempDir(), key: key, addr: "127.0.0.1:0", mod: mod}
	r.start()
	t.Cleanup(func() {
		if r.srv != nil {
			r.stop(false)
		}
	})
	return r
}

func quietLog() *slog.Logger {
	if os.Getenv("EDGED_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("side", "relay")
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (r *testRelay) start() {
	r.t.Helper()
	log := quietLog()
	store, err := storage.Open(storage.DefaultOptions(r.dir), log)
	if err != nil {
		r.t.Fatal(err)
	}
	opts := server.Options{
		Listen: r.addr, Role: relayconfig.EdgeRoleRelayCoordinator,
		HeartbeatInterval: 30 * time.Second, StaleThreshold: 90 * time.Second,
		TokenTTL: time.Hour, OverlapWindow: time.Minute, AttestPerMinute: 1000,
		MaxPendingChallenges: 1024, HelloTimeout: 5 * time.Second, StreamQueue: 256,
		FlushInterval: time.Hour, DrainGrace: 2 * time.Second, MaxStreams: 200,
		SigningKey: r.key, Issuer: keys.Issuer("root"),
	}
	if r.mod != nil {
		r.mod(&opts)
	}
	srv, err := server.New(opts, store, metrics.NewRegistry(), log)
	if err != nil {
		store.Close()
		r.t.Fatal(err)
	}
	r.srv, r.store, r.addr, r.served = srv, store, srv.Addr().String(), make(chan error, 1)
	go func() { r.served <- srv.Serve() }()
}

// stop stops the relay: gracefully (health NOT_SERVING, Drain to every stream, close) or
// at once.
func (r *testRelay) stop(graceful bool) {
	r.t.Helper()
	if graceful {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		r.srv.Shutdown(ctx)
		cancel()
	} else {
		r.srv.Close()
	}
	select {
	case err := <-r.served:
		if err != nil {
			r.t.Errorf("Serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		r.t.Fatal("Serve did not return")
	}
	if err := r.store.Close(); err != nil {
		r.t.Errorf("close store: %v", err)
	}
	r.srv = nil
}

func (r *testRelay) enrollToken() string {
	tok, _, err := server.EnrollmentToken(r.key, r.srv.Issuer(), "acme", "test", 15*time.Minute, time.Now())
	if err != nil {
		r.t.Fatal(err)
	}
	return tok
}

// ---- agents ----

func fakeAgent(t *testing.T) string {
	p, err := filepath.Abs(filepath.Join("testdata", "fake-agent.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// agentConfig is a keel-agent config for r in dir.
func agentConfig(t *testing.T, r *testRelay, dir string) *config.Config {
	cfg := config.Default()
	cfg.NodeID = uuid.NewString()
	cfg.Edge.Relay = r.addr
	cfg.Edge.KeyFile, cfg.Edge.TokenFile = filepath.Join(dir, "edge.key"), filepath.Join(dir, "token")
	cfg.Edge.HeartbeatInterval = time.Second
	cfg.Edge.Labels = []string{"site=test"}
	cfg.Edge.Tools.AgentRun.Command = []string{"/bin/sh", fakeAgent(t), "lines", filepath.Join(dir, "marker"), "3", "-D", "{classes}"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func enroll(t *testing.T, r *testRelay, cfg *config.Config, log *slog.Logger) *edged.Credentials {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := edged.Enroll(ctx, cfg, edged.EnrollRequest{Relay: r.addr, Token: r.enrollToken()}, log)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runningAgent is a daemon running in a goroutine.
type runningAgent struct {
	d      *edged.Daemon
	cancel context.CancelFunc
	done   chan error
}

func runAgent(t *testing.T, cfg *config.Config, opts edged.Options, log *slog.Logger) *runningAgent {
	t.Helper()
	d, err := edged.New(cfg, opts, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &runningAgent{d: d, cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-a.done:
		case <-time.After(30 * time.Second):
			t.Error("the daemon did not stop")
		}
	})
	return a
}

// waitFor polls cond (the relay offers no channel for these) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func args(t *testing.T, m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// invoke runs a tool from the relay side and returns its output and result.
func invoke(t *testing.T, r *testRelay, node, tool string, a map[string]any) (string, *edgepb.EdgeResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var out strings.Builder
	res, err := r.srv.Invoke(ctx, node, tool, args(t, a), 20*time.Second, func(ch *edgepb.Chunk) {
		mu.Lock()
		out.Write(ch.GetStdout())
		out.Write(ch.GetStderr())
		mu.Unlock()
	})
	if err != nil {
		t.Fatalf("Invoke %s: %v", tool, err)
	}
	mu.Lock()
	defer mu.Unlock()
	return out.String(), res
}

func fastOptions() edged.Options {
	return edged.Options{
		BackoffBase: 100 * time.Millisecond, BackoffCap: time.Second, ResetAfter: time.Second,
		CredentialPoll: 100 * time.Millisecond, DrainLinger: 300 * time.Millisecond,
	}
}

// TestEdgeEndToEnd: enroll, run, agent-run invoked by the relay with live output and its
// exit code, refusals, PushConfig, rotation under a live stream (in the daemon and by
// another process), an abrupt relay restart, and an operator's Drain.
func TestEdgeEndToEnd(t *testing.T) {
	r := startRelay(t)
	rec := newRecorder()
	dir := t.TempDir()
	cfg := agentConfig(t, r, dir)
	creds := enroll(t, r, cfg, rec.logger())
	if creds.NodeID != cfg.NodeID || creds.Claims.Role != "edge" {
		t.Fatalf("credentials: %+v", creds.Claims)
	}
	for _, f := range []string{cfg.Edge.KeyFile, cfg.Edge.TokenFile} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v", f, err, st.Mode())
		}
	}
	// A second enroll without --force is refused and changes nothing.
	if _, err := edged.Enroll(context.Background(), cfg, edged.EnrollRequest{Relay: r.addr, Token: r.enrollToken()}, rec.logger()); err == nil {
		t.Fatal("enroll over an enrolled node succeeded")
	}
	node := cfg.NodeID
	a := runAgent(t, cfg, fastOptions(), rec.logger())
	waitFor(t, "the stream", func() bool { return r.srv.Connected(node) })
	info, err := r.srv.Daemon(node)
	if err != nil || !slices.Equal(info.Capabilities.GetLocalTools(), []string{"agent-run"}) || info.Capabilities.GetCustomLabels()["site"] != "test" {
		t.Fatalf("daemon as the relay sees it: %+v %v", info, err)
	}

	t.Run("agent-run live output", func(t *testing.T) {
		marker := filepath.Join(dir, "marker")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		chunks := make(chan string, 64)
		type outcome struct {
			res *edgepb.EdgeResult
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			res, err := r.srv.Invoke(ctx, node, "agent-run", args(t, map[string]any{"classes": []any{"cfe_a", "b"}}), 20*time.Second, func(ch *edgepb.Chunk) {
				chunks <- string(ch.GetStdout()) + string(ch.GetStderr())
			})
			done <- outcome{res, err}
		}()
		var seen strings.Builder
		for !strings.Contains(seen.String(), "line 1\n") {
			select {
			case c := <-chunks:
				seen.WriteString(c)
			case o := <-done:
				t.Fatalf("finished before the marker: %v %v", o.res, o.err)
			}
		}
		// The tool is still waiting for the marker: what we saw is live output.
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		o := <-done
		close(chunks)
		for c := range chunks {
			seen.WriteString(c)
		}
		if o.err != nil || o.res.GetOk().GetExitCode() != 3 {
			t.Fatalf("result %v %v, want Ok exit 3", o.res, o.err)
		}
		for _, want := range []string{"start lines " + marker + " 3 -D cfe_a,b\n", "line 1\n", "to stderr\n", "line 2\n"} {
			if !strings.Contains(seen.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, seen.String())
			}
		}
		os.Remove(marker)
	})

	t.Run("remote-run runner", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "marker"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(dir, "marker"))
		var lines []string
		res, ok := r.srv.Runner().RunAgent(context.Background(), node, []string{"x1"}, func(l []byte) { lines = append(lines, string(l)) })
		if !ok || res.ExitCode != 3 || len(lines) != 3 || !strings.Contains(lines[0], "-D x1") {
			t.Errorf("RunAgent: ok %v %+v lines %q", ok, res, lines)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		if _, res := invoke(t, r, node, "ssh", nil); res.GetErr().GetCode() != edged.CodeUnknownTool {
			t.Errorf("unknown tool: %v", res)
		}
		if _, res := invoke(t, r, node, "shell", map[string]any{"command": "id"}); res.GetErr().GetCode() != edged.CodeToolDisabled {
			t.Errorf("shell: %v", res)
		}
	})

	t.Run("push config", func(t *testing.T) {
		if err := r.srv.PushConfig(node, []byte("tools: {shell: {enabled: bogus}}"), "v0"); err != nil {
			t.Fatal(err)
		}
		if err := r.srv.PushConfig(node, []byte("tools: {shell: {enabled: true}}"), "v1"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the CapabilityUpdate", func() bool {
			info, err := r.srv.Daemon(node)
			return err == nil && slices.Contains(info.Capabilities.GetLocalTools(), "shell")
		})
		if a.d.ConfigVersion() != "v1" || len(rec.find("edge: config push refused", "version", "v0")) != 1 {
			t.Errorf("version %q; the bad delta was not refused", a.d.ConfigVersion())
		}
		if out, res := invoke(t, r, node, "shell", map[string]any{"command": "echo $((6*7))"}); out != "42\n" || res.GetOk().GetExitCode() != 0 {
			t.Errorf("shell: %q %v", out, res)
		}
	})

	t.Run("heartbeats", func(t *testing.T) {
		first, _ := r.srv.Daemon(node)
		waitFor(t, "a heartbeat", func() bool {
			info, err := r.srv.Daemon(node)
			return err == nil && info.LastSeen.After(first.LastSeen)
		})
	})

	connects := func() int { return len(rec.find("edge: connected", "", nil)) }
	t.Run("rotate in the daemon", func(t *testing.T) {
		before := connects()
		oldKey, _ := os.ReadFile(cfg.Edge.KeyFile)
		oldThumb := edgetoken.Thumbprint(a.d.Credentials().Key.Public().(ed25519.PublicKey))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.d.RotateKey(ctx); err != nil {
			t.Fatal(err)
		}
		newKey, _ := os.ReadFile(cfg.Edge.KeyFile)
		if string(newKey) == string(oldKey) {
			t.Fatal("key file unchanged")
		}
		info, _ := r.srv.Daemon(node)
		if info.KeyThumbprint == oldThumb || info.KeyThumbprint != edgetoken.Thumbprint(a.d.Credentials().Key.Public().(ed25519.PublicKey)) {
			t.Errorf("relay holds key %s", info.KeyThumbprint)
		}
		if out, res := invoke(t, r, node, "shell", map[string]any{"command": "echo after"}); out != "after\n" || res.GetOk() == nil {
			t.Errorf("after rotation: %q %v", out, res)
		}
		if n := connects(); n != before {
			t.Errorf("the stream reconnected %d times during an in-daemon rotation", n-before)
		}
	})

	t.Run("rotate from another process", func(t *testing.T) {
		before := connects()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, _, err := edged.RotateKey(ctx, r.addr, cfg.Edge, rec.logger())
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the daemon to load the new key", func() bool { return a.d.Credentials().Token == c.Token })
		if out, res := invoke(t, r, node, "shell", map[string]any{"command": "echo again"}); out != "again\n" || res.GetOk() == nil {
			t.Errorf("after rotation: %q %v", out, res)
		}
		t.Logf("rotation by another process: %d reconnection(s)", connects()-before)
	})

	t.Run("relay restart", func(t *testing.T) {
		before := connects()
		r.stop(false)
		waitFor(t, "the agent to notice", func() bool { return len(rec.find("edge: stream ended; reconnecting", "", nil)) > 0 })
		r.start()
		waitFor(t, "the reconnection", func() bool { return r.srv.Connected(node) && connects() > before })
		// The stream had lasted longer than ResetAfter: the delays started over.
		if recs := rec.find("edge: stream ended; reconnecting", "", nil); recs[0].attrs["attempt"] != int64(1) {
			t.Errorf("first reconnection attempt %v, want 1", recs[0].attrs["attempt"])
		}
		if out, res := invoke(t, r, node, "shell", map[string]any{"command": "echo back"}); out != "back\n" || res.GetOk() == nil {
			t.Errorf("after restart: %q %v", out, res)
		}
	})

	t.Run("operator drain", func(t *testing.T) {
		if err := r.srv.Drain(node); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-a.done:
			if err != nil {
				t.Fatalf("Run after Drain: %v", err)
			}
			a.done <- nil // for the cleanup
		case <-time.After(20 * time.Second):
			t.Fatal("the daemon did not stop after Drain")
		}
	})
}

// TestEdgeTokenRefresh: with short-lived tokens the daemon rotates its key at 80% of the
// token's life and keeps its stream (no reconnection) past the first token's expiry.
func TestEdgeTokenRefresh(t *testing.T) {
	r := startRelayWith(t, func(o *server.Options) { o.TokenTTL = 5 * time.Second })
	rec := newRecorder()
	dir := t.TempDir()
	cfg := agentConfig(t, r, dir)
	cfg.Edge.Tools.Shell.Enabled = true
	first := enroll(t, r, cfg, rec.logger())
	a := runAgent(t, cfg, fastOptions(), rec.logger())
	node := cfg.NodeID
	waitFor(t, "the stream", func() bool { return r.srv.Connected(node) })
	waitFor(t, "a refreshed token", func() bool { return a.d.Credentials().Token != first.Token })
	if got, want := a.d.Credentials().Claims.IssuedAt, first.Claims.IssuedAt.Add(4*time.Second); got.Before(want.Add(-time.Second)) {
		t.Errorf("refreshed at %s, want about %s (80%% of the token's life)", got, want)
	}
	// Past the first token's expiry (and leeway of the second) the stream still works.
	time.Sleep(time.Until(first.Claims.Expiry) + time.Second)
	if out, res := invoke(t, r, node, "shell", map[string]any{"command": "echo fresh"}); out != "fresh\n" || res.GetOk() == nil {
		t.Errorf("after the first token expired: %q %v", out, res)
	}
	if n := len(rec.find("edge: connected", "", nil)); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	if n := len(rec.find("edge: key rotated", "", nil)); n < 1 {
		t.Error("no rotation logged")
	}
}

// TestEdgeDeadlineCancelShutdown: a tool the relay gives up on (deadline, cancel) is killed
// with its process group; Shutdown cancels tools past the grace and stops the daemon.
func TestEdgeDeadlineCancelShutdown(t *testing.T) {
	r := startRelay(t)
	rec := newRecorder()
	dir := t.TempDir()
	cfg := agentConfig(t, r, dir)
	pidFile := filepath.Join(dir, "pids")
	cfg.Edge.Tools.AgentRun.Command = []string{"/bin/sh", fakeAgent(t), "hang", pidFile}
	enroll(t, r, cfg, rec.logger())
	a := runAgent(t, cfg, fastOptions(), rec.logger())
	node := cfg.NodeID
	waitFor(t, "the stream", func() bool { return r.srv.Connected(node) })

	// hang runs the hanging tool. The caller removes the previous pid file first, in the
	// test's goroutine, so that waiting for the file cannot see the last run's.
	hang := func(ctx context.Context, deadline time.Duration) (*edgepb.EdgeResult, error) {
		return r.srv.Invoke(ctx, node, "agent-run", args(t, nil), deadline, nil)
	}
	gone := func() {
		t.Helper()
		waitFor(t, "the tool to end", func() bool { return a.d != nil && len(rec.find("edge: tool done", "", nil)) > 0 })
	}

	// Deadline.
	os.Remove(pidFile)
	res, err := hang(context.Background(), 1500*time.Millisecond)
	if err != nil || res.GetTimedOut() == nil {
		t.Fatalf("deadline: %v %v", res, err)
	}
	gone()
	pids := readPidFile(t, pidFile)
	waitFor(t, "the process group to die", func() bool { return groupGone(pids) })

	// Cancel by the caller.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *edgepb.EdgeResult, 1)
	os.Remove(pidFile)
	go func() { res, _ := hang(ctx, time.Minute); done <- res }()
	waitFor(t, "the tool to start", func() bool { _, err := os.Stat(pidFile); return err == nil })
	pids = readPidFile(t, pidFile)
	cancel()
	<-done
	waitFor(t, "the cancelled process group to die", func() bool { return groupGone(pids) })
	waitFor(t, "the daemon's Cancelled", func() bool { return len(rec.find("edge: cancelling", "", nil)) == 1 })

	// Shutdown with a grace: the running tool is cancelled when it ends, then Run returns.
	os.Remove(pidFile)
	go func() { res, _ := hang(context.Background(), time.Minute); done <- res }()
	waitFor(t, "the tool to start", func() bool { _, err := os.Stat(pidFile); return err == nil })
	pids = readPidFile(t, pidFile)
	if err := r.srv.ShutdownDaemon(node, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if c := res.GetCancelled(); c == nil || !strings.Contains(c.GetReason(), "shutdown") {
			t.Errorf("result after Shutdown: %v", res)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no result after Shutdown")
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		a.done <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon did not stop after Shutdown")
	}
	// The group was sent SIGKILL before Run returned; a loaded machine may take a moment to
	// carry it out for the grandchildren.
	waitFor(t, "the tool's process group to die after Shutdown", func() bool { return groupGone(pids) })
}

func readPidFile(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		var n int
		if _, err := fmt.Sscan(f, &n); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, n)
	}
	return pids
}

// groupGone reports whether none of pids is a live (non-zombie) process.
func groupGone(pids []int) bool {
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && s[i+2] == 'Z' {
			continue
		}
		return false
	}
	return true
}

// TestEdgeFleetReconnectJitter: 50 daemons, each with its own key, reconnect after a
// graceful relay restart (which sends them Drain and closes their streams: they must not
// stop), at visibly jittered times.
func TestEdgeFleetReconnectJitter(t *testing.T) {
	if testing.Short() {
		t.Skip("50 daemons")
	}
	const n = 50
	r := startRelay(t)
	rec := newRecorder()
	opts := edged.Options{BackoffBase: time.Second, BackoffCap: 8 * time.Second, ResetAfter: time.Second, CredentialPoll: time.Minute}
	nodes := make([]string, n)
	agents := make([]*runningAgent, n)
	for i := range n {
		cfg := agentConfig(t, r, t.TempDir())
		cfg.Edge.HeartbeatInterval = 5 * time.Second
		log := rec.logger().With("agent", i)
		enroll(t, r, cfg, log)
		nodes[i] = cfg.NodeID
		agents[i] = runAgent(t, cfg, opts, log)
	}
	allConnected := func() bool {
		for _, id := range nodes {
			if !r.srv.Connected(id) {
				return false
			}
		}
		return true
	}
	waitFor(t, "50 streams", allConnected)
	stopAt := time.Now()
	r.stop(true)
	// Down for a while: each daemon retries on its own jittered schedule.
	time.Sleep(1500 * time.Millisecond)
	restartAt := time.Now()
	r.start()
	waitFor(t, "50 reconnections", allConnected)
	doneAt := time.Now()
	for i, a := range agents {
		select {
		case err := <-a.done:
			t.Fatalf("agent %d stopped on the relay's Drain: %v", i, err)
		default:
		}
	}

	// First delays (attempt 1, ceiling = base) and reconnection times after the restart.
	var first []float64
	reconnect := make([]float64, 0, n)
	for i := range n {
		var gotFirst bool
		for _, rc := range rec.find("edge: stream ended; reconnecting", "agent", int64(i)) {
			if rc.at.Before(stopAt) {
				continue
			}
			if d, ok := rc.attrs["delay"].(time.Duration); ok && rc.attrs["attempt"] == int64(1) && !gotFirst {
				if d < 0 || d > time.Second {
					t.Errorf("agent %d: first delay %s outside [0, 1s]", i, d)
				}
				first = append(first, d.Seconds())
				gotFirst = true
			}
		}
		for _, rc := range rec.find("edge: connected", "agent", int64(i)) {
			if rc.at.After(restartAt) {
				reconnect = append(reconnect, rc.at.Sub(restartAt).Seconds())
				break
			}
		}
	}
	if len(first) != n || len(reconnect) != n {
		t.Fatalf("records: %d first delays, %d reconnections, want %d", len(first), len(reconnect), n)
	}
	fs, rs := stats(first), stats(reconnect)
	t.Logf("first reconnect delay (attempt 1, ceiling 1s) over %d agents: min %.3fs max %.3fs mean %.3fs stddev %.3fs", n, fs.min, fs.max, fs.mean, fs.sd)
	t.Logf("reconnected after the restart: min +%.3fs max +%.3fs mean +%.3fs stddev %.3fs; all back %.2fs after the restart (relay down %.2fs)",
		rs.min, rs.max, rs.mean, rs.sd, doneAt.Sub(restartAt).Seconds(), restartAt.Sub(stopAt).Seconds())
	if fs.sd < 0.12 || fs.max-fs.min < 0.5 {
		t.Errorf("first delays barely spread: %+v", fs)
	}
	if rs.sd < 0.1 {
		t.Errorf("reconnections in step: %+v", rs)
	}
}

type summary struct{ min, max, mean, sd float64 }

func stats(xs []float64) summary {
	s := summary{min: math.Inf(1), max: math.Inf(-1)}
	for _, x := range xs {
		s.min, s.max = min(s.min, x), max(s.max, x)
		s.mean += x
	}
	s.mean /= float64(len(xs))
	for _, x := range xs {
		s.sd += (x - s.mean) * (x - s.mean)
	}
	s.sd = math.Sqrt(s.sd / float64(len(xs)))
	return s
}
