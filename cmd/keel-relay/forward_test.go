package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// countingProxy is a reverse proxy that counts the PUTs it passes on, per path and status.
type countingProxy struct {
	*httptest.Server
	mu        sync.Mutex
	attempts  map[string]int // PUTs per path, whatever the answer
	delivered map[string]int // PUTs per path answered 2xx by the backend
}

// newCountingProxy proxies to backend (a base URL) on a loopback port.
func newCountingProxy(t *testing.T, backend string) *countingProxy {
	t.Helper()
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a backend that is down is part of the test
	rp.Transport = newClient(0).Transport
	p := &countingProxy{attempts: map[string]int{}, delivered: map[string]int{}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		rp.ServeHTTP(rec, r)
		if r.Method != http.MethodPut {
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.attempts[r.URL.Path]++
		if rec.code >= 200 && rec.code < 300 {
			p.delivered[r.URL.Path]++
		}
	}))
	t.Cleanup(p.Close)
	return p
}

// counts returns the attempts and deliveries of PUTs to path.
func (p *countingProxy) counts(path string) (attempts, delivered int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.attempts[path], p.delivered[path]
}

// statusRecorder remembers the status code of a response.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// randomBytes returns n random bytes.
func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestForwardUpstream is the two-relay acceptance test: a file sent at a sub-relay for a
// node it does not know travels to the root, also when the root is down for a while and the
// sub-relay crashes with the file still queued, and it is delivered exactly once.
func TestForwardUpstream(t *testing.T) {
	dir := t.TempDir()
	rootN := relaytest.NewNode("root", "root", 0)
	relay1 := relaytest.NewNode("relay1", "root", 1)
	a := relaytest.NewNode("a", "relay1", 2)
	b := relaytest.NewNode("b", "root", 3)

	rootNodes := filepath.Join(dir, "root-nodes.json")
	relaytest.WriteFileAtomic(t, rootNodes, relaytest.NodeMap(rootN, relay1, a, b))
	relayNodes := filepath.Join(dir, "relay1-nodes.json")
	relaytest.WriteFileAtomic(t, relayNodes, relaytest.NodeMap(relay1, a))

	rootAPI, rootAdmin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	rootCfg := writeConfig(t, dir, "root.yaml", relayConf{
		NodeID: "root", DataDir: filepath.Join(dir, "root-data"), Nodes: rootNodes,
		Listen: rootAPI, Admin: rootAdmin,
	})
	root := startRelay(t, "root", rootCfg, rootAPI, rootAdmin)

	// relay1 reaches the root through a proxy that counts deliveries.
	proxy := newCountingProxy(t, "http://"+rootAPI)
	relayAPI, relayAdmin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	relayCfg := writeConfig(t, dir, "relay1.yaml", relayConf{
		NodeID: "relay1", Role: "relay", Upstream: proxy.URL, DataDir: filepath.Join(dir, "relay1-data"),
		Nodes: relayNodes, Listen: relayAPI, Admin: relayAdmin,
	})
	sub := startRelay(t, "relay1", relayCfg, relayAPI, relayAdmin)

	// (a) Both up: the file is queued at relay1 and delivered to the root.
	first := randomBytes(t, 300<<10)
	if code, body := putFile(t, sub.api, a, "b", "first", first); code != http.StatusOK {
		t.Fatalf("PUT at relay1: %d %s", code, body)
	}
	relaytest.Eventually(t, 5*time.Second, "the root has the first file", func() bool {
		return headFile(t, root.api, "b", "a", "first", first) == http.StatusOK
	})
	requireFile(t, root.api, b, "a", "first", first)
	relaytest.Eventually(t, 5*time.Second, "relay1's queue is empty", func() bool { return status(t, sub.api).QueueDepth == 0 })
	code, hdr := headHeaders(t, sub.api, "b", "a", "first", first)
	if code != http.StatusOK || hdr.Get("Content-Length") != strconv.Itoa(len(first)) || hdr.Get("ETag") != `"`+sha256Hex(first)+`"` {
		t.Errorf("HEAD at relay1, asked of the root: %d, Content-Length %q, ETag %q; want 200, %d and the hash",
			code, hdr.Get("Content-Length"), hdr.Get("ETag"), len(first))
	}
	if code := headFile(t, sub.api, "b", "a", "first", []byte("other")); code != http.StatusNotFound {
		t.Errorf("HEAD at relay1 with another hash: %d, want 404", code)
	}

	// (b) Root down: the file stays queued, across a crash of relay1.
	root.stop(t)
	second := randomBytes(t, 700<<10)
	if code, body := putFile(t, sub.api, a, "b", "second", second); code != http.StatusOK {
		t.Fatalf("PUT at relay1 with the root down: %d %s", code, body)
	}
	secondPath := "/rudder/relay-api/1/shared-files/b/a/second"
	relaytest.Eventually(t, 5*time.Second, "relay1 tried to deliver the second file", func() bool {
		attempts, _ := proxy.counts(secondPath)
		return attempts > 0
	})
	// A next hop that cannot answer is not "file absent": the client must not re-send.
	if code, hdr := headHeaders(t, sub.api, "b", "a", "second", second); code != http.StatusBadGateway || hdr.Get("Content-Length") != "0" {
		t.Errorf("HEAD at relay1 with the root down: %d, Content-Length %q; want 502 and 0", code, hdr.Get("Content-Length"))
	}
	sub.kill9(t)
	sub = startRelay(t, "relay1 (restarted)", relayCfg, relayAPI, relayAdmin)
	if q := status(t, sub.api).QueueDepth; q != 1 {
		t.Fatalf("relay1 after the crash: queue_depth %d, want 1", q)
	}

	// Root back: the file is delivered, once.
	root = startRelay(t, "root (restarted)", rootCfg, rootAPI, rootAdmin)
	relaytest.Eventually(t, 10*time.Second, "the root has the second file", func() bool {
		return headFile(t, root.api, "b", "a", "second", second) == http.StatusOK
	})
	requireFile(t, root.api, b, "a", "second", second)
	requireFile(t, root.api, b, "a", "first", first)
	relaytest.Eventually(t, 5*time.Second, "relay1's queue is empty", func() bool { return status(t, sub.api).QueueDepth == 0 })

	// Longer than max_backoff: a duplicate delivery would have happened by now.
	time.Sleep(1500 * time.Millisecond)
	if _, delivered := proxy.counts(secondPath); delivered != 1 {
		t.Errorf("second file delivered %d times, want 1", delivered)
	}
	if _, delivered := proxy.counts("/rudder/relay-api/1/shared-files/b/a/first"); delivered != 1 {
		t.Errorf("first file delivered %d times, want 1", delivered)
	}
	puts := metricValue(t, root.admin, "keel_http_requests_total",
		map[string]string{"route": "shared-files", "method": "PUT", "code": "200"})
	if puts != 1 {
		t.Errorf("restarted root counted %v successful PUTs, want 1", puts)
	}
	if q := status(t, sub.api).QueueDepth; q != 0 {
		t.Errorf("relay1 queue_depth %d at the end, want 0", q)
	}
	if !bytes.Contains([]byte(sub.out.String()), []byte("forward delivered")) {
		t.Errorf("relay1 did not log the delivery")
	}
}

// TestForwardEarlyAnswer: a next hop that answers before it has read the body (a proxy whose
// backend is down, a server refusing the size) must not upset the relay: the delivery is
// retried, and the relay keeps serving.
func TestForwardEarlyAnswer(t *testing.T) {
	dir := t.TempDir()
	relay1 := relaytest.NewNode("relay1", "root", 1)
	a := relaytest.NewNode("a", "relay1", 2)
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(relay1, a))

	var mu sync.Mutex
	attempts := 0
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts++
		mu.Unlock()
		http.Error(w, "backend down", http.StatusServiceUnavailable) // without reading the body
	}))
	t.Cleanup(upstream.Close)

	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	cfg := writeConfig(t, dir, "relay1.yaml", relayConf{
		NodeID: "relay1", Role: "relay", Upstream: upstream.URL, DataDir: filepath.Join(dir, "data"),
		Nodes: nodes, Listen: api, Admin: admin,
		Extra: "storage:\n  chunk_size: 64KiB\n",
	})
	p := startRelay(t, "relay1", cfg, api, admin)
	const files = 8
	for i := range files {
		if code, body := putFile(t, p.api, a, "b", fmt.Sprintf("big%d", i), randomBytes(t, 4<<20)); code != http.StatusOK {
			t.Fatalf("PUT: %d %s", code, body)
		}
	}
	relaytest.Eventually(t, 15*time.Second, "40 delivery attempts", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return attempts >= 40 || p.exited()
	})
	if p.exited() {
		t.Fatalf("relay1 died during the deliveries")
	}
	if strings.Contains(p.out.String(), "did not release") {
		t.Errorf("a delivery's request body was not released:\n%s", p.out.String())
	}
	if st := status(t, p.api); st.QueueDepth != files {
		t.Errorf("queue_depth %d, want %d (still queued)", st.QueueDepth, files)
	}
	p.stop(t)
}
