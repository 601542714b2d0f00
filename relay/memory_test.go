package relay_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/relaytest"
)

// nearFlag is a memory pressure a test turns on and off.
type nearFlag struct{ on atomic.Bool }

func (n *nearFlag) Near() bool { return n.on.Load() }

// TestMemoryPlan: the budget comes from the cgroup, or memory.limit below it; a memory.limit
// above the cgroup's gives the cgroup's and a warning; the split lowers the settings.
func TestMemoryPlan(t *testing.T) {
	root := t.TempDir()
	for name, content := range map[string]string{
		"proc/meminfo":        "MemTotal: 1048576 kB\n",
		"proc/self/cgroup":    "0::/system.slice/keel-relay.service\n",
		"proc/self/mountinfo": "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
		"sys/fs/cgroup/system.slice/keel-relay.service/memory.max": "134217728\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		limit      config.AutoByteSize
		wantBytes  int64
		wantSource string
		warns      bool
		uploads    int
		edgeConns  int
	}{
		{config.Auto, 128 << 20, "cgroup v2 /sys/fs/cgroup/system.slice/keel-relay.service/memory.max", false, 43, 412},
		{config.AutoByteSize(64 * config.MiB), 64 << 20, "memory.limit", false, 19, 181},
		{config.AutoByteSize(512 * config.MiB), 128 << 20, "cgroup v2 /sys/fs/cgroup/system.slice/keel-relay.service/memory.max", true, 43, 412},
	} {
		cfg := config.Default()
		cfg.Memory.Limit = tc.limit
		plan, warnings := relay.MemoryPlanAt(cfg, root)
		if plan.Bytes != tc.wantBytes || plan.Source != tc.wantSource || (len(warnings) > 0) != tc.warns {
			t.Errorf("memory.limit %s: budget %d from %q, warnings %q; want %d from %q, warnings: %v",
				tc.limit, plan.Bytes, plan.Source, warnings, tc.wantBytes, tc.wantSource, tc.warns)
		}
		if plan.UploadSlots != tc.uploads || plan.GoLimit != tc.wantBytes*3/4 {
			t.Errorf("memory.limit %s: %d upload slots, Go limit %d; want %d, %d", tc.limit, plan.UploadSlots, plan.GoLimit, tc.uploads, tc.wantBytes*3/4)
		}
		if plan.EdgeConnections != tc.edgeConns {
			t.Errorf("memory.limit %s: %d edge connections, want %d", tc.limit, plan.EdgeConnections, tc.edgeConns)
		}
	}
}

// TestMemoryAdmission: near the memory budget, a new upload waits for its slot and, the
// pressure outlasting http.upload_slot_wait, gets 503 with Retry-After, nothing stored and its
// answer read whole; one whose wait sees the pressure go is stored. A remote-run call gets 429
// with Retry-After. /system/status says it all.
func TestMemoryAdmission(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	cfg := relaytest.Config(t, t.TempDir(), "root", relaytest.NodeMap(root, n1, src))
	cfg.HTTP.UploadSlotWait = 300 * time.Millisecond
	near := &nearFlag{}
	r := relaytest.StartWith(t, cfg, relay.Options{Pressure: near})

	st := status(t, r)
	if m := st.Memory; m == nil || m.NearLimit || m.InUseBytes <= 0 || m.Split.MaxConcurrentUploads < 1 || (m.LimitBytes > 0 && m.Split.EdgeMaxConnections <= m.Split.EdgeMaxStreams) || m.Source == "" {
		t.Fatalf("memory status before: %+v", m)
	}

	near.on.Store(true)
	// A body larger than what net/http drains after a handler that did not read it.
	file := content(600<<10, 7)
	body := relaytest.SignedBody(t, src, file, "1h")
	const path = "/shared-files/n1/src/near"
	a := put(t, r, path, body)
	if a.code != http.StatusServiceUnavailable || a.hdr.Get("Retry-After") == "" || !bytes.Contains(a.body, []byte("memory budget")) {
		t.Errorf("PUT near the budget: %d (Retry-After %q) %s; want 503 with Retry-After about the memory budget", a.code, a.hdr.Get("Retry-After"), a.body)
	}
	if a := head(t, r, path+"?hash="+sha256hex(file)); a.code != http.StatusNotFound {
		t.Errorf("HEAD after the refused PUT: %d, want 404 (nothing stored)", a.code)
	}
	if v := metricValue(t, metricsText(t, r), `keel_upload_slot_refusals_total{reason="memory"}`); v != 1 {
		t.Errorf("keel_upload_slot_refusals_total{reason=memory} = %v, want 1", v)
	}

	rr := do(t, http.MethodPost, r.URL+"/rudder/relay-api/remote-run/nodes/n1", strings.NewReader("keep_output=true"),
		func(req *http.Request) { req.Header.Set("Content-Type", "application/x-www-form-urlencoded") })
	if rr.code != http.StatusTooManyRequests || rr.hdr.Get("Retry-After") == "" || !bytes.Contains(rr.body, []byte("memory budget")) {
		t.Errorf("remote run near the budget: %d (Retry-After %q) %s; want 429 with Retry-After", rr.code, rr.hdr.Get("Retry-After"), rr.body)
	}
	if m := status(t, r).Memory; m == nil || !m.NearLimit {
		t.Errorf("memory status near the budget: %+v, want near_limit", m)
	}

	// An upload that waits while the pressure goes gets its slot and is stored.
	cfg2 := relaytest.Config(t, t.TempDir(), "root", relaytest.NodeMap(root, n1, src))
	cfg2.HTTP.UploadSlotWait = 10 * time.Second
	near2 := &nearFlag{}
	near2.on.Store(true)
	r2 := relaytest.StartWith(t, cfg2, relay.Options{Pressure: near2})
	go func() {
		time.Sleep(500 * time.Millisecond)
		near2.on.Store(false)
	}()
	start := time.Now()
	if a := put(t, r2, path, body); a.code != http.StatusOK {
		t.Errorf("PUT while the pressure goes: %d %s, want 200", a.code, a.body)
	}
	if waited := time.Since(start); waited < 400*time.Millisecond {
		t.Errorf("the upload did not wait for the pressure to go (%s)", waited)
	}
	if a := get(t, r2, path, n1); a.code != http.StatusOK || !bytes.Equal(a.body, file) {
		t.Errorf("GET after the wait: %d, identical: %v", a.code, bytes.Equal(a.body, file))
	}
}

// TestAPIConnectionBound checks http.max_connections on the real listener: with the bound
// reached by connections in the middle of a request, a new one is not refused but waits, and
// is served as soon as one of them closes; with the bound reached by idle keep-alive
// connections, those are closed to make room at once.
func TestAPIConnectionBound(t *testing.T) {
	t.Parallel()
	cfg := relaytest.Config(t, t.TempDir(), "root", relaytest.NodeMap(relaytest.NewNode("root", "root", 0)))
	cfg.HTTP.MaxConnections, cfg.HTTP.MaxConcurrentUploads = 2, 2
	r := relaytest.Start(t, cfg)
	addr := strings.TrimPrefix(r.URL, "http://")
	const statusPath = "/rudder/relay-api/1/system/status"
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	get := func() chan int {
		answered := make(chan int, 1)
		go func() {
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := client.Get(r.URL + statusPath)
			if err != nil {
				answered <- 0
				return
			}
			_ = resp.Body.Close()
			answered <- resp.StatusCode
		}()
		return answered
	}

	// Two connections in the middle of their request (headers not finished) hold the slots.
	var busy []net.Conn
	for range 2 {
		c := dial()
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n", statusPath); err != nil {
			t.Fatal(err)
		}
		busy = append(busy, c)
	}
	time.Sleep(100 * time.Millisecond) // the server has accepted both
	answered := get()
	select {
	case code := <-answered:
		t.Fatalf("a third connection was served (%d) with 2 busy and http.max_connections 2", code)
	case <-time.After(300 * time.Millisecond):
	}
	_ = busy[0].Close()
	select {
	case code := <-answered:
		if code != http.StatusOK {
			t.Errorf("the waiting request got %d, want 200", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting request was not served after a connection closed")
	}
	_ = busy[1].Close()

	// Two idle keep-alive connections (a request answered on each) are closed for a new one.
	var idle []net.Conn
	for range 2 {
		c := dial()
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", statusPath); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		idle = append(idle, c)
	}
	select {
	case code := <-get():
		if code != http.StatusOK {
			t.Errorf("the new request got %d, want 200", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("idle keep-alive connections starved a new one")
	}
	_ = idle[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle[0].Read(make([]byte, 1)); err == nil {
		t.Error("an idle connection was still open after the full listener reclaimed idle ones")
	}
}
