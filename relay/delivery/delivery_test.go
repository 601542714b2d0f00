package delivery_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/keyhash"
	"github.com/keel-relay/keel/relay/delivery"
	"github.com/keel-relay/keel/relay/forward"
	"github.com/keel-relay/keel/relay/nodemap"
	"github.com/keel-relay/keel/relay/relaytest"
	"github.com/keel-relay/keel/storage"
)

const (
	relayID = "relay1"
	nodeA   = "0a1b2c3d-0000-4000-8000-00000000000a"
	nodeB   = "0a1b2c3d-0000-4000-8000-00000000000b"
	// unknownNode is in no node map.
	unknownNode = "0a1b2c3d-0000-4000-8000-0000000000ff"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testMap is the relay's node map: this relay (under the root), and nodes A and B below it.
func testMap(t testing.TB) *nodemap.Map {
	t.Helper()
	m, err := nodemap.Parse([]byte(`{
	  "relay1": {"hostname": "relay1.test", "policy-server": "root"},
	  "`+nodeA+`": {"hostname": "a.test", "policy-server": "relay1"},
	  "`+nodeB+`": {"hostname": "b.test", "policy-server": "relay1"}
	}`), relayID)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func report(node string, i int) string {
	return fmt.Sprintf("2026-12-03T16:%02d:00+00:00@%s.log.gz", i, node)
}

func openStore(t testing.TB, dir string) *storage.Store {
	t.Helper()
	o := storage.DefaultOptions(dir)
	o.ChunkSize = 4 << 10
	s, err := storage.Open(o, discard())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keep(t testing.TB, s *storage.Store, kind, name string, content []byte) {
	t.Helper()
	u, err := s.NewUpload(int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(content); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutAgentUpload(u, kind, name); err != nil {
		t.Fatal(err)
	}
}

// received is one request the recording upstream took.
type received struct {
	Method, Path, User, Password string
	Body                         []byte
	Status                       int
	At                           time.Time
}

// upstream is a real HTTP server that records what it is sent, answering answer's status
// (201 when answer is nil).
type upstream struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	started int                              // requests whose body was read
	answer  func(r *http.Request, n int) int // n: requests to the same path before this one
}

func newUpstream(t testing.TB, tlsOn bool, answer func(r *http.Request, n int) int) *upstream {
	u := &upstream{answer: answer}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream: read body: %v", err)
		}
		user, pw, _ := r.BasicAuth()
		u.mu.Lock()
		n := 0
		for _, g := range u.got {
			if g.Path == r.URL.Path {
				n++
			}
		}
		u.started++
		u.mu.Unlock()
		status := http.StatusCreated
		if u.answer != nil {
			status = u.answer(r, n)
		}
		u.mu.Lock()
		u.got = append(u.got, received{Method: r.Method, Path: r.URL.Path, User: user, Password: pw, Body: body, Status: status, At: time.Now()})
		u.mu.Unlock()
		if status >= 300 && status < 400 {
			w.Header().Set("Location", "/moved"+r.URL.Path)
		}
		w.WriteHeader(status)
	})
	if tlsOn {
		u.srv = httptest.NewTLSServer(h)
	} else {
		u.srv = httptest.NewServer(h)
	}
	t.Cleanup(u.srv.Close)
	return u
}

// inflight reports whether a request is being answered.
func (u *upstream) inflight() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.started > len(u.got)
}

func (u *upstream) requests() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.got)
}

// delivered returns the paths answered 2xx, in order.
func (u *upstream) delivered() []string {
	var paths []string
	for _, g := range u.requests() {
		if g.Status/100 == 2 {
			paths = append(paths, g.Path)
		}
	}
	return paths
}

type harness struct {
	reg   *metrics.Registry
	store *storage.Store
	w     *delivery.Worker
	m     *delivery.Metrics
	stop  func()
}

func fastOptions(t testing.TB, base string, nodes *nodemap.Map) delivery.Options {
	t.Helper()
	hops, err := forward.NewHops(forward.HopOptions{Upstream: base, AllowHTTP: true}, func() *nodemap.Map { return nodes }, discard())
	if err != nil {
		t.Fatal(err)
	}
	return delivery.Options{
		Upstream: hops.Upstream, Auth: func() delivery.Auth { return delivery.Auth{User: "rudder"} },
		Nodes:      func() *nodemap.Map { return nodes },
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, AttemptTimeout: 5 * time.Second,
		Retention: time.Hour, StatsInterval: 10 * time.Millisecond,
	}
}

// start runs a worker over s until the test ends (or stop).
func start(t testing.TB, s *storage.Store, opts delivery.Options) *harness {
	t.Helper()
	reg := metrics.NewRegistry()
	m := delivery.NewMetrics(reg)
	w := delivery.New(s, opts, m, discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	// Tests defer h.stop() right after start, so that it runs before their deferred
	// s.Close (t.Cleanup would run after it: the worker's housekeeping would then use a
	// closed store). This is the fallback for a test that returns early.
	t.Cleanup(stop)
	return &harness{reg: reg, store: s, w: w, m: m, stop: stop}
}

// gauge reads a series of the worker's registry from its text exposition (labels as
// written there, "" for none); -1 when it is missing.
func (h *harness) gauge(t testing.TB, name, labels string) float64 {
	t.Helper()
	var b bytes.Buffer
	if err := h.reg.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	series := name
	if labels != "" {
		series += "{" + labels + "}"
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

func waiting(s *storage.Store, kind string) []string {
	var names []string
	_ = s.AgentUploads(kind, false, func(a storage.AgentUpload) bool { names = append(names, a.Name); return true })
	return names
}

// TestOrderPerKind: a head that fails is retried, and the others of its kind wait behind
// it; another kind goes on meanwhile, even with its upstream path always failing.
func TestOrderPerKind(t *testing.T) {
	up := newUpstream(t, false, func(r *http.Request, n int) int {
		switch {
		case strings.HasPrefix(r.URL.Path, "/inventory-updates/"):
			return http.StatusServiceUnavailable // always down for this kind
		case r.URL.Path == "/reports/"+report(nodeA, 1) && n < 2:
			return http.StatusBadGateway // the head fails twice
		}
		return http.StatusCreated
	})
	s := openStore(t, t.TempDir())
	defer s.Close()
	big := make([]byte, 10<<10)
	_, _ = rand.Read(big)
	keep(t, s, "reports", report(nodeA, 1), big)
	keep(t, s, "inventory-updates", "a.ocs.gz", []byte("inv"))
	keep(t, s, "reports", report(nodeB, 2), []byte("r2"))
	keep(t, s, "reports", report(nodeA, 3), nil) // empty: Content-Length 0
	keep(t, s, "inventories", "new.ocs.sign", []byte("sig"))
	h := start(t, s, fastOptions(t, up.srv.URL, testMap(t)))
	defer h.stop() // before the deferred s.Close: a worker must never outlive its store

	relaytest.Eventually(t, 10*time.Second, "reports and inventories delivered", func() bool {
		return len(waiting(s, "reports")) == 0 && len(waiting(s, "inventories")) == 0
	})
	var reports []string
	for _, g := range up.requests() {
		if strings.HasPrefix(g.Path, "/reports/") {
			reports = append(reports, fmt.Sprintf("%s %d", strings.TrimPrefix(g.Path, "/reports/"), g.Status))
		}
		if g.Path == "/reports/"+report(nodeA, 1) && g.Status == 201 && !bytes.Equal(g.Body, big) {
			t.Errorf("report delivered with %d bytes, want the %d kept", len(g.Body), len(big))
		}
	}
	want := []string{report(nodeA, 1) + " 502", report(nodeA, 1) + " 502", report(nodeA, 1) + " 201",
		report(nodeB, 2) + " 201", report(nodeA, 3) + " 201"}
	if !slices.Equal(reports, want) {
		t.Fatalf("reports upstream:\n%s\nwant\n%s", strings.Join(reports, "\n"), strings.Join(want, "\n"))
	}
	// The failing kind keeps its upload, with the attempts and the reason.
	relaytest.Eventually(t, 5*time.Second, "inventory update retried", func() bool {
		a, ok, _ := s.NextAgentUpload("inventory-updates")
		return ok && a.Attempts >= 2 && strings.Contains(a.LastError, "503")
	})
	relaytest.Eventually(t, 5*time.Second, "metrics", func() bool {
		return metrics.Value(h.m.Reports.With("forward_ok")) == 3 && metrics.Value(h.m.Reports.With("forward_error")) == 2 &&
			metrics.Value(h.m.Inventories.With("forward_ok")) == 1 && metrics.Value(h.m.Inventories.With("forward_error")) >= 2 &&
			metrics.Value(h.m.Failures.With("reports")) == 2
	})
	if st := s.AgentUploadStats(); st.Waiting != 1 || st.Failed != 0 || st.WaitingBytes != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func writeSecret(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAuthPerKind: inventories go with the default password, the others with password_file,
// over TLS verified by the upstream's key pin.
func TestAuthPerKind(t *testing.T) {
	up := newUpstream(t, true, nil)
	pin := keyhash.OfSPKI(up.srv.Certificate().RawSubjectPublicKeyInfo).String()
	nodes := testMap(t)
	hops, err := forward.NewHops(forward.HopOptions{Upstream: up.srv.URL, UpstreamKeyHash: pin}, func() *nodemap.Map { return nodes }, discard())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	auth := delivery.Auth{User: "relay-user", PasswordFile: writeSecret(t, dir, "pw", "s3cret\n"),
		DefaultPasswordFile: writeSecret(t, dir, "default", "initial\r\n")}
	var authMu sync.Mutex
	opts := fastOptions(t, up.srv.URL, nodes)
	opts.Upstream = hops.Upstream
	opts.Auth = func() delivery.Auth { authMu.Lock(); defer authMu.Unlock(); return auth }

	s := openStore(t, t.TempDir())
	defer s.Close()
	keep(t, s, "inventories", "first.ocs", []byte("1"))
	keep(t, s, "inventory-updates", "upd.xml", []byte("2"))
	keep(t, s, "reports", report(nodeA, 0), []byte("3"))
	h := start(t, s, opts)
	defer h.stop() // before the deferred s.Close: a worker must never outlive its store
	relaytest.Eventually(t, 10*time.Second, "3 delivered", func() bool { return len(up.delivered()) == 3 })

	// Without a default password file, inventories use "rudder"; without a password
	// file, the others use the inventories' password.
	authMu.Lock()
	auth.DefaultPasswordFile, auth.PasswordFile = "", ""
	authMu.Unlock()
	keep(t, s, "inventories", "second.ocs.gz", []byte("4"))
	keep(t, s, "reports", report(nodeA, 1), []byte("5"))
	h.w.Wake()
	relaytest.Eventually(t, 10*time.Second, "5 delivered", func() bool { return len(up.delivered()) == 5 })

	want := map[string]string{
		"/inventories/first.ocs":       "relay-user:initial",
		"/inventory-updates/upd.xml":   "relay-user:s3cret",
		"/reports/" + report(nodeA, 0): "relay-user:s3cret",
		"/inventories/second.ocs.gz":   "relay-user:rudder",
		"/reports/" + report(nodeA, 1): "relay-user:rudder",
	}
	for _, g := range up.requests() {
		if got := g.User + ":" + g.Password; got != want[g.Path] || g.Method != http.MethodPut {
			t.Errorf("%s %s with %q, want PUT with %q", g.Method, g.Path, got, want[g.Path])
		}
	}

	// An unreadable password file is not the upload's fault: it waits and is retried.
	authMu.Lock()
	auth.PasswordFile = filepath.Join(dir, "missing")
	authMu.Unlock()
	keep(t, s, "reports", report(nodeA, 2), []byte("6"))
	h.w.Wake()
	relaytest.Eventually(t, 5*time.Second, "retried for the password", func() bool {
		a, ok, _ := s.NextAgentUpload("reports")
		return ok && a.Attempts > 0 && strings.Contains(a.LastError, "upstream password")
	})
	if n := len(up.requests()); n != 5 {
		t.Fatalf("%d requests upstream, want 5 (none without a password)", n)
	}
}

// TestNotForwarded: a report of a node not in the node map is kept aside as failed and
// counted invalid; a report whose name does not parse and an inventory with another
// extension are removed; none goes upstream. An empty node map decides nothing.
func TestNotForwarded(t *testing.T) {
	up := newUpstream(t, false, nil)
	s := openStore(t, t.TempDir())
	defer s.Close()
	keep(t, s, "reports", report(unknownNode, 1), []byte("x"))
	keep(t, s, "reports", "not-a-report.txt", []byte("x"))
	keep(t, s, "inventories", relayID+".hive", []byte("x"))
	keep(t, s, "reports", report(relayID, 2), []byte("own")) // the relay itself is known
	h := start(t, s, fastOptions(t, up.srv.URL, testMap(t)))
	defer h.stop() // before the deferred s.Close: a worker must never outlive its store
	relaytest.Eventually(t, 10*time.Second, "all handled", func() bool {
		return len(waiting(s, "")) == 0 && metrics.Value(h.m.Reports.With("invalid")) == 2
	})
	if got := up.delivered(); !slices.Equal(got, []string{"/reports/" + report(relayID, 2)}) {
		t.Fatalf("delivered %v", got)
	}
	var failed []storage.AgentUpload
	_ = s.AgentUploads("", true, func(a storage.AgentUpload) bool { failed = append(failed, a); return true })
	if len(failed) != 1 || failed[0].Name != report(unknownNode, 1) || failed[0].FailReason != "unknown node "+unknownNode {
		t.Fatalf("failed set %+v", failed)
	}
	relaytest.Eventually(t, 5*time.Second, "gauges", func() bool {
		return h.gauge(t, "keel_agent_uploads_failed", "") == 1
	})
	h.stop()

	// With an empty map (not loaded), a report waits rather than fail.
	keep(t, s, "reports", report(nodeA, 3), []byte("x"))
	empty := nodemap.Empty(relayID)
	h = start(t, s, fastOptions(t, up.srv.URL, empty))
	defer h.stop() // before the deferred s.Close: a worker must never outlive its store
	relaytest.Eventually(t, 5*time.Second, "report waiting on the empty map", func() bool {
		a, ok, _ := s.NextAgentUpload("reports")
		return ok && a.Attempts > 0 && strings.Contains(a.LastError, "node map is empty")
	})
	if st := s.AgentUploadStats(); st.Failed != 1 || st.Waiting != 1 {
		t.Fatalf("stats %+v", st)
	}
	if metrics.Value(h.m.Reports.With("forward_error")) != 0 {
		t.Fatal("waiting for the node map counted as a forward error")
	}
}

// TestRetention: uploads (waiting, failed) kept longer than the retention are removed and
// counted, whatever the upstream does.
func TestRetention(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	keep(t, s, "reports", report(nodeA, 1), []byte("x"))
	keep(t, s, "reports", report(unknownNode, 2), []byte("x"))
	keep(t, s, "inventories", "i.ocs", []byte("x"))
	opts := fastOptions(t, "http://"+relaytest.DownAddr(t), testMap(t))
	opts.Retention, opts.SweepInterval = 300*time.Millisecond, 20*time.Millisecond
	h := start(t, s, opts)
	defer h.stop() // before the deferred s.Close: a worker must never outlive its store
	relaytest.Eventually(t, 10*time.Second, "expired", func() bool {
		st := s.AgentUploadStats()
		return st.Waiting == 0 && st.Failed == 0
	})
	if got := metrics.Value(h.m.Expired.With("reports")) + metrics.Value(h.m.Expired.With("inventories")); got != 3 {
		t.Fatalf("%v expired counted, want 3", got)
	}
	if metrics.Value(h.m.Reports.With("forward_error")) == 0 || metrics.Value(h.m.Failures.With("inventories")) == 0 {
		t.Fatal("the down upstream was not counted")
	}
	relaytest.Eventually(t, 5*time.Second, "gauges back to 0", func() bool {
		return h.gauge(t, "keel_agent_uploads_waiting", `kind="reports"`) == 0 &&
			h.gauge(t, "keel_agent_uploads_oldest_waiting_seconds", "") == 0
	})
}

// TestRestartResumes: a worker that could not deliver stops; another over the same store
// (reopened) resumes in the same order, not before the due time the first one set.
func TestRestartResumes(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	for i := range 3 {
		keep(t, s, "reports", report(nodeA, i), []byte{byte(i)})
	}
	opts := fastOptions(t, "http://"+relaytest.DownAddr(t), testMap(t))
	opts.MinBackoff, opts.MaxBackoff = 600*time.Millisecond, 600*time.Millisecond
	h := start(t, s, opts)
	defer h.stop() // before the deferred s.Close: a worker must never outlive its store
	var head storage.AgentUpload
	relaytest.Eventually(t, 5*time.Second, "first attempt failed", func() bool {
		a, ok, _ := s.NextAgentUpload("reports")
		head = a
		return ok && a.Attempts == 1
	})
	if h.gauge(t, "keel_agent_uploads_waiting", `kind="reports"`) != 3 {
		relaytest.Eventually(t, 5*time.Second, "waiting gauge", func() bool {
			return h.gauge(t, "keel_agent_uploads_waiting", `kind="reports"`) == 3
		})
	}
	h.stop()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir)
	defer s.Close()
	a, ok, err := s.NextAgentUpload("reports")
	if err != nil || !ok || a.Attempts != 1 || !a.Due.Equal(head.Due) || a.LastError == "" {
		t.Fatalf("after reopen: %+v, %v, %v; want the retried head %+v", a, ok, err, head)
	}
	up := newUpstream(t, false, nil)
	opts = fastOptions(t, up.srv.URL, testMap(t))
	defer start(t, s, opts).stop() // before the deferred s.Close
	relaytest.Eventually(t, 10*time.Second, "delivered after restart", func() bool { return len(up.delivered()) == 3 })
	got := up.requests()
	for i, g := range got {
		if want := "/reports/" + report(nodeA, i); g.Path != want || !bytes.Equal(g.Body, []byte{byte(i)}) {
			t.Fatalf("request %d: %s %v, want %s", i, g.Path, g.Body, want)
		}
	}
	if got[0].At.Before(head.Due) {
		t.Fatalf("delivered at %v, before the due time %v kept from the first run", got[0].At, head.Due)
	}
}

// TestRedirects: a 307 or 308 is followed with the same bytes and credentials (read again
// from the store); a 301, which would turn the PUT into a GET, is a failure.
func TestRedirects(t *testing.T) {
	up := newUpstream(t, false, func(r *http.Request, n int) int {
		switch {
		case strings.HasPrefix(r.URL.Path, "/moved/"):
			return http.StatusCreated
		case strings.HasPrefix(r.URL.Path, "/reports/"):
			return http.StatusTemporaryRedirect
		case strings.HasPrefix(r.URL.Path, "/inventory-updates/"):
			return http.StatusPermanentRedirect
		default:
			return http.StatusMovedPermanently // inventories
		}
	})
	s := openStore(t, t.TempDir())
	defer s.Close()
	big := make([]byte, 9<<10) // 3 chunks
	_, _ = rand.Read(big)
	keep(t, s, "reports", report(nodeA, 1), big)
	keep(t, s, "inventory-updates", "u.gz", []byte("update"))
	keep(t, s, "inventories", "i.gz", []byte("inv"))
	h := start(t, s, fastOptions(t, up.srv.URL, testMap(t)))
	defer h.stop() // before the deferred s.Close: a worker must never outlive its store
	relaytest.Eventually(t, 10*time.Second, "redirected uploads delivered", func() bool {
		return len(waiting(s, "reports")) == 0 && len(waiting(s, "inventory-updates")) == 0
	})
	for _, g := range up.requests() {
		switch g.Path {
		case "/moved/reports/" + report(nodeA, 1):
			if g.Method != http.MethodPut || !bytes.Equal(g.Body, big) || g.Password != "rudder" {
				t.Errorf("redirected report: %s, %d bytes, password %q", g.Method, len(g.Body), g.Password)
			}
		case "/moved/inventory-updates/u.gz":
			if g.Method != http.MethodPut || string(g.Body) != "update" {
				t.Errorf("redirected update: %s %q", g.Method, g.Body)
			}
		case "/moved/inventories/i.gz":
			t.Errorf("the 301 was followed with a %s", g.Method)
		}
	}
	relaytest.Eventually(t, 5*time.Second, "301 retried", func() bool {
		a, ok, _ := s.NextAgentUpload("inventories")
		return ok && a.Attempts >= 1 && strings.Contains(a.LastError, "would not deliver")
	})
	if v := metrics.Value(h.m.Inventories.With("forward_ok")); v != 1 {
		t.Fatalf("inventories forward_ok %v, want 1 (the update; not the 301)", v)
	}
}

// TestShutdownMidAttempt: an attempt cut by the shutdown leaves the upload waiting, with no
// attempt counted, and Run returns.
func TestShutdownMidAttempt(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	up := newUpstream(t, false, func(r *http.Request, n int) int {
		<-release
		return http.StatusCreated
	})
	defer once.Do(func() { close(release) })
	s := openStore(t, t.TempDir())
	defer s.Close()
	keep(t, s, "reports", report(nodeA, 1), []byte("x"))
	h := start(t, s, fastOptions(t, up.srv.URL, testMap(t)))
	defer h.stop() // before the deferred s.Close: a worker must never outlive its store
	relaytest.Eventually(t, 5*time.Second, "attempt in flight", func() bool { return len(up.requests()) == 0 && up.inflight() })
	h.stop()
	once.Do(func() { close(release) })
	a, ok, err := s.NextAgentUpload("reports")
	if err != nil || !ok || a.Attempts != 0 {
		t.Fatalf("after shutdown: %+v, %v, %v", a, ok, err)
	}
}

// TestRedirectLeavingHTTPS: a redirect from the HTTPS upstream to plain HTTP is not
// followed (the credentials would travel in clear); the upload is retried.
func TestRedirectLeavingHTTPS(t *testing.T) {
	plain := newUpstream(t, false, nil)
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer secure.Close()
	pin := keyhash.OfSPKI(secure.Certificate().RawSubjectPublicKeyInfo).String()
	nodes := testMap(t)
	hops, err := forward.NewHops(forward.HopOptions{Upstream: secure.URL, UpstreamKeyHash: pin}, func() *nodemap.Map { return nodes }, discard())
	if err != nil {
		t.Fatal(err)
	}
	opts := fastOptions(t, secure.URL, nodes)
	opts.Upstream = hops.Upstream
	s := openStore(t, t.TempDir())
	defer s.Close()
	keep(t, s, "inventories", "i.gz", []byte("x"))
	defer start(t, s, opts).stop() // before the deferred s.Close
	relaytest.Eventually(t, 5*time.Second, "redirect refused", func() bool {
		a, ok, _ := s.NextAgentUpload("inventories")
		return ok && a.Attempts > 0 && strings.Contains(a.LastError, "from HTTPS")
	})
	if got := plain.requests(); len(got) != 0 {
		t.Fatalf("the plain HTTP server got %+v", got)
	}
}

// TestAttemptTimeout: an upstream that does not answer within forward.attempt_timeout
// fails the attempt, which is retried.
func TestAttemptTimeout(t *testing.T) {
	release := make(chan struct{})
	var first sync.Once
	up := newUpstream(t, false, func(r *http.Request, n int) int {
		hang := false
		first.Do(func() { hang = true })
		if hang {
			<-release // the first request hangs
		}
		return http.StatusCreated
	})
	defer close(release)
	s := openStore(t, t.TempDir())
	defer s.Close()
	keep(t, s, "reports", report(nodeA, 1), []byte("x"))
	opts := fastOptions(t, up.srv.URL, testMap(t))
	opts.AttemptTimeout = 200 * time.Millisecond
	h := start(t, s, opts)
	defer h.stop() // before the deferred s.Close: a worker must never outlive its store
	relaytest.Eventually(t, 5*time.Second, "timed out attempt retried", func() bool {
		return metrics.Value(h.m.Failures.With("reports")) == 1
	})
	relaytest.Eventually(t, 5*time.Second, "delivered on the second attempt", func() bool {
		return len(up.delivered()) == 1 && len(waiting(s, "reports")) == 0
	})
}

// BenchmarkDeliverReports delivers b.N kept 4 KiB reports to a local upstream (one kind,
// one at a time, each removal synced): the rate a relay catches up at after an outage.
func BenchmarkDeliverReports(b *testing.B) {
	up := newUpstream(b, false, nil)
	s := openStore(b, b.TempDir())
	defer s.Close()
	content := bytes.Repeat([]byte("r"), 4<<10)
	for i := range b.N {
		at := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
		keep(b, s, "reports", at.Format(time.RFC3339)[:19]+"+00:00@"+nodeA+".log.gz", content)
	}
	b.SetBytes(int64(len(content)))
	b.ResetTimer()
	start(b, s, fastOptions(b, up.srv.URL, testMap(b)))
	deadline := time.Now().Add(time.Minute)
	for len(up.delivered()) < b.N || s.AgentUploadStats().Waiting > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d delivered after a minute", len(up.delivered()), b.N)
		}
		time.Sleep(time.Millisecond)
	}
}
