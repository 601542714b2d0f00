// Package relaytest builds what tests of the relay need: nodes with real RSA keys, node maps
// pinning those keys, signed shared-file bodies, and a running relay on loopback. It is
// imported only by tests.
package relaytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/keyhash"
	"github.com/keel-relay/keel/internal/wire/sigblock"
	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/config"
)

// Node is a test node with its own RSA key.
type Node struct {
	ID           string
	Hostname     string
	PolicyServer string
	Key          *rsa.PrivateKey
}

var (
	keyMu   sync.Mutex
	keyPool []*rsa.PrivateKey
)

// key returns a 2048-bit RSA key; keys are generated once per test binary and reused by
// index, since generation is slow.
func key(i int) *rsa.PrivateKey {
	keyMu.Lock()
	defer keyMu.Unlock()
	for len(keyPool) <= i {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keyPool = append(keyPool, k)
	}
	return keyPool[i]
}

// NewNode returns a node hanging under policyServer; keyIndex picks its key (nodes with the
// same index share a key).
func NewNode(id, policyServer string, keyIndex int) *Node {
	return &Node{ID: id, Hostname: id + ".example.test", PolicyServer: policyServer, Key: key(keyIndex)}
}

// Pin returns the node's key-hash as Rudder 7 writes it (sha256//base64 of the SPKI DER).
func (n *Node) Pin() string {
	pin, err := keyhash.Of(&n.Key.PublicKey)
	if err != nil {
		panic(err)
	}
	return pin.String()
}

// NodeMap returns a node map JSON (the bare-object shape) listing nodes.
func NodeMap(nodes ...*Node) []byte {
	m := map[string]map[string]string{}
	for _, n := range nodes {
		m[n.ID] = map[string]string{"hostname": n.Hostname, "policy-server": n.PolicyServer, "key-hash": n.Pin()}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

// BigNodeMap returns a node map JSON (the bare-object shape) listing nodes and, below the
// first of them, filler more nodes ("filler-0000001", ...: UUID-sized ids, each with its own
// hostname and key hash), to make a map of a realistic size (about 150 bytes a node).
func BigNodeMap(filler int, nodes ...*Node) []byte {
	var b bytes.Buffer
	b.WriteString("{")
	entry := func(id, hostname, parent, keyHash string) {
		if b.Len() > 1 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `%q: {"hostname": %q, "policy-server": %q, "key-hash": %q}`, id, hostname, parent, keyHash)
	}
	for _, n := range nodes {
		entry(n.ID, n.Hostname, n.PolicyServer, n.Pin())
	}
	for i := range filler {
		id := fmt.Sprintf("filler-%029d", i)
		entry(id, id+".example.test", nodes[0].ID, keyhash.OfSPKI([]byte(id)).String())
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// SignedBody returns a PUT body: the source's signature block (sha256), an empty line, content.
func SignedBody(t testing.TB, source *Node, content []byte, ttl string) []byte {
	t.Helper()
	return bodySigning(t, source, content, content, ttl)
}

// BogusBody is the PUT body of someone who knows the source's public key (the node map and
// every block the source sent show it) but not its private key: a well-formed block with the
// source's key and a digest that signs other bytes, then content.
func BogusBody(t testing.TB, source *Node, content []byte, ttl string) []byte {
	t.Helper()
	return bodySigning(t, source, []byte("other bytes"), content, ttl)
}

// bodySigning returns a PUT body: the source's signature block over signed, an empty line,
// content.
func bodySigning(t testing.TB, source *Node, signed, content []byte, ttl string) []byte {
	t.Helper()
	block, err := sigblock.Sign(source.Key, "sha256", bytes.NewReader(signed), source.Hostname, "2026-01-01", "TEST", ttl)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	var buf bytes.Buffer
	if _, err := block.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	buf.Write(content)
	return buf.Bytes()
}

// Relay is a relay.Server running on loopback for a test.
type Relay struct {
	*relay.Server
	Config *config.Config
	URL    string // API base URL
	Admin  string // admin base URL
	logs   *lockedWriter
	cancel context.CancelFunc
	done   chan error
}

// Config returns a config for a test relay: ephemeral loopback ports, data in dir, fast
// backoff, the node map in dir/nodes.json when nodes is non-nil.
func Config(t testing.TB, dir string, nodeID string, nodes []byte) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.NodeID = nodeID
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Edge.Listen = "127.0.0.1:0"
	cfg.ShutdownGrace = 5 * time.Second
	cfg.Forward.MinBackoff = 50 * time.Millisecond
	cfg.Forward.MaxBackoff = 500 * time.Millisecond
	cfg.Forward.AllowHTTP = true
	cfg.Forward.SubRelayURL = "http://{hostname}"
	cfg.NodesPollInterval = 100 * time.Millisecond
	if nodes != nil {
		cfg.NodesFile = filepath.Join(dir, "nodes.json")
		if err := os.WriteFile(cfg.NodesFile, nodes, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

// Start runs a relay with cfg until the test ends (or Stop); LogText returns what it logged.
func Start(t testing.TB, cfg *config.Config) *Relay {
	t.Helper()
	return StartWith(t, cfg, relay.Options{})
}

// StartLogging is Start with the relay logging to log (LogText then returns nothing): a
// benchmark counting allocations passes a logger that discards.
func StartLogging(t testing.TB, cfg *config.Config, log *slog.Logger) *Relay {
	t.Helper()
	return StartWith(t, cfg, relay.Options{Logger: log})
}

// StartWith is Start with options (such as a memory Pressure). Without a Logger, the relay
// logs for LogText; Build is the test's own.
func StartWith(t testing.TB, cfg *config.Config, opts relay.Options) *Relay {
	t.Helper()
	var logs *lockedWriter
	if opts.Logger == nil {
		logs = &lockedWriter{w: &bytes.Buffer{}}
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts.Build = relay.Build{Version: "test"}
	srv, err := relay.New(cfg, opts)
	if err != nil {
		t.Fatalf("relay.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{Server: srv, Config: cfg, URL: "http://" + srv.APIAddr().String(), cancel: cancel, done: make(chan error, 1), logs: logs}
	if a := srv.AdminAddr(); a != nil {
		r.Admin = "http://" + a.String()
	}
	go func() { r.done <- srv.Run(ctx) }()
	t.Cleanup(func() { _ = r.Stop() })
	return r
}

// Stop drains the relay and returns Run's result; calling it again returns nil.
func (r *Relay) Stop() error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("relay did not stop within 30s")
	}
}

// Put sends a PUT of body to path (relative to the API base URL) and returns the status and
// the answer's body.
func (r *Relay) Put(t testing.TB, path string, body []byte) (int, string) {
	t.Helper()
	return Do(t, http.MethodPut, r.URL+path, body)
}

// handedOut are the ports FreeAddrOn has given in this test binary: the kernel may give a port
// just closed again, and two listeners of one relay must not get the same one.
var handedOut = struct {
	sync.Mutex
	ports map[string]bool
}{ports: map[string]bool{}}

// FreeAddr returns a loopback address whose port was free a moment ago (nothing listens there
// once it returns: also a next hop that is down) and that it did not return before in this
// test binary.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return FreeAddrOn(t, "127.0.0.1")
}

// FreePort returns a port free a moment ago on every address (the wildcard address was
// bound), for a listener on 0.0.0.0 that tests also reach on 127.0.0.1; like FreeAddr, it
// never returns a port twice in this test binary.
func FreePort(t testing.TB) string {
	t.Helper()
	_, port, err := net.SplitHostPort(FreeAddrOn(t, "0.0.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// FreeAddrOn returns host:port with a port free a moment ago on host, never one handed out
// before in this test binary (whatever the host).
func FreeAddrOn(t testing.TB, host string) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		_, port, err := net.SplitHostPort(ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return net.JoinHostPort(host, port)
		}
	}
	t.Fatalf("no free port on %s that was not handed out before", host)
	return ""
}

// client sends test requests, bounded in time. Keep-alive connections are avoided on
// purpose: a transport may dial a spare one that never carries a request, and net/http's
// Shutdown waits up to 5s for such a connection, which would slow every stop.
var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

// Do sends one request and returns the status code and body.
func Do(t testing.TB, method, url string, body []byte) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// LogText returns what the relay logged so far (debug level and up).
func (r *Relay) LogText() string {
	if r.logs == nil {
		return ""
	}
	r.logs.mu.Lock()
	defer r.logs.mu.Unlock()
	return r.logs.w.String()
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// PacedPut sends body with c as a PUT to url in pieces of piece bytes with a pause of pace
// between them, so that the upload stays in flight for a while, and returns the status code
// (0 when the request failed).
func PacedPut(c *http.Client, url string, body []byte, piece int, pace time.Duration) int {
	pr, pw := io.Pipe()
	go func() {
		for off := 0; off < len(body); off += piece {
			if _, err := pw.Write(body[off:min(off+piece, len(body))]); err != nil {
				return // the request failed and the transport closed the pipe
			}
			time.Sleep(pace)
		}
		pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPut, url, pr)
	if err != nil {
		pr.CloseWithError(err)
		return 0
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.Do(req)
	if err != nil {
		pr.CloseWithError(err)
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	pr.CloseWithError(io.ErrClosedPipe)
	return resp.StatusCode
}

// SyncBuffer collects a process's output: Write and String may be called from different
// goroutines.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WriteFileAtomic replaces path with data through a rename, so a reader never sees half.
func WriteFileAtomic(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Eventually polls cond every 20ms until it holds, or fails the test after timeout saying
// what was awaited.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
