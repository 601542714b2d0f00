package nodecerts

import (
	"bytes"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keel-relay/keel/relay/nodecerts/nodecertstest"
)

// logBuf is a concurrency-safe log destination.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func newHolder(t *testing.T, path string) (*Holder, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	return NewHolder(path, slog.New(slog.NewTextHandler(lb, nil))), lb
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodescerts.pem")
	c1, p1, _ := nodecertstest.Issue(t, node1, "node1")
	c2, p2, _ := nodecertstest.Issue(t, node2, "node2")

	// Missing at start: empty, warned once, even over reloads.
	h, lb := newHolder(t, path)
	if h.Current().Len() != 0 {
		t.Fatal("a missing file gives certificates")
	}
	if err := h.Reload(); err != nil {
		t.Fatalf("Reload of a missing file: %v", err)
	}
	if n := lb.count("node certificates file missing"); n != 1 {
		t.Errorf("missing file warned %d times, want 1", n)
	}

	writeFile(t, path, nodecertstest.Bundle(p1))
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	if id, ok := h.Current().Lookup(c1); !ok || id != node1 {
		t.Errorf("after Reload: Lookup = %q, %v", id, ok)
	}

	// A bad file: error, the set in force kept.
	writeFile(t, path, nodecertstest.Bundle(p1, pemCert([]byte("bad"))))
	if err := h.Reload(); err == nil || !strings.Contains(err.Error(), "certificate 2") {
		t.Errorf("Reload of a bad file: %v", err)
	}
	if _, ok := h.Current().Lookup(c1); !ok {
		t.Error("the set in force was dropped on a bad reload")
	}

	writeFile(t, path, nodecertstest.Bundle(p1, p2))
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	if h.Current().Len() != 2 {
		t.Errorf("Len() = %d, want 2", h.Current().Len())
	}
	if _, ok := h.Current().Lookup(c2); !ok {
		t.Error("the added certificate is not in force")
	}

	// Removed: empty again, warned again.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(); err != nil || h.Current().Len() != 0 {
		t.Errorf("Reload of a removed file: %v, %d certificates", err, h.Current().Len())
	}
	if n := lb.count("node certificates file missing"); n != 2 {
		t.Errorf("missing file warned %d times in all, want 2", n)
	}

	// A bad file at start: empty, logged as an error.
	writeFile(t, path, []byte("-----BEGIN CERTIFICATE-----\n"))
	h, lb = newHolder(t, path)
	if h.Current().Len() != 0 || lb.count("level=ERROR") != 1 {
		t.Errorf("bad file at start: %d certificates, log %q", h.Current().Len(), lb.b.String())
	}

	// No path: empty, silent.
	h, lb = newHolder(t, "")
	if h.Current().Len() != 0 || h.Reload() != nil || lb.b.Len() != 0 {
		t.Errorf("no path: %d certificates, log %q", h.Current().Len(), lb.b.String())
	}
}

// server is a TLS server configured by h, answering the node id of the request's client.
func server(t *testing.T, h *Holder) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS.DidResume {
			w.Header().Set("Did-Resume", "yes")
		}
		id, ok := NodeID(r)
		if !ok {
			io.WriteString(w, "anonymous")
			return
		}
		io.WriteString(w, "node "+id)
	}))
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13}
	h.ConfigureTLS(srv.TLS)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// client is an HTTPS client of srv presenting certs; it keeps no connection open, so each
// request makes a handshake (resumption included, with the session cache).
func client(srv *httptest.Server, certs ...tls.Certificate) *http.Client {
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = certs
	tr.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr}
}

// get returns the body of GET srv/ by c, or the error.
func get(c *http.Client, srv *httptest.Server) (string, error) {
	body, _, err := getResumed(c, srv)
	return body, err
}

// getResumed is get also telling whether the TLS session was resumed.
func getResumed(c *http.Client, srv *httptest.Server) (body string, resumed bool, err error) {
	resp, err := c.Get(srv.URL + "/")
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.Header.Get("Did-Resume") == "yes", err
}

func TestConfigureTLS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodescerts.pem")
	_, p1, k1 := nodecertstest.Issue(t, node1, "node1")
	_, p2, k2 := nodecertstest.Issue(t, node2, "node2")
	_, pu, ku := nodecertstest.Issue(t, node2, "node2") // same UID, unknown certificate
	writeFile(t, path, nodecertstest.Bundle(p1))
	h, _ := newHolder(t, path)
	srv := server(t, h)

	known := client(srv, nodecertstest.TLSCertificate(t, p1, k1))
	second := client(srv, nodecertstest.TLSCertificate(t, p2, k2))
	unknown := client(srv, nodecertstest.TLSCertificate(t, pu, ku))
	none := client(srv)

	for _, c := range []struct {
		name   string
		c      *http.Client
		answer string // "" for a refused handshake
	}{
		{"known", known, "node " + node1},
		{"known again (resumed)", known, "node " + node1},
		{"not yet known", second, ""},
		{"unknown with a known UID", unknown, ""},
		{"no certificate", none, "anonymous"},
	} {
		got, err := get(c.c, srv)
		if c.answer == "" && err == nil {
			t.Errorf("%s: accepted, answer %q", c.name, got)
		}
		if c.answer != "" && (err != nil || got != c.answer) {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.answer)
		}
	}

	if _, resumed, err := getResumed(known, srv); err != nil || !resumed {
		t.Fatalf("the known client's session was not resumed (%v): the reload check below would not test resumption", err)
	}

	// Reload adding node2's certificate and dropping node1's: in force for new connections,
	// resumed sessions included.
	writeFile(t, path, nodecertstest.Bundle(p2))
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, err := get(second, srv); err != nil || got != "node "+node2 {
		t.Errorf("added certificate: %q, %v", got, err)
	}
	if got, err := get(known, srv); err == nil {
		t.Errorf("removed certificate (resumable session) accepted: %q", got)
	}
	if got, err := get(none, srv); err != nil || got != "anonymous" {
		t.Errorf("no certificate after reload: %q, %v", got, err)
	}
}

// TestConfigureTLSKeepsCheck: a VerifyConnection already in the configuration still runs.
func TestConfigureTLSKeepsCheck(t *testing.T) {
	h, _ := newHolder(t, "")
	called := false
	c := &tls.Config{VerifyConnection: func(tls.ConnectionState) error { called = true; return io.EOF }}
	h.ConfigureTLS(c)
	if c.ClientAuth != tls.RequestClientCert {
		t.Errorf("ClientAuth = %v", c.ClientAuth)
	}
	if err := c.VerifyConnection(tls.ConnectionState{}); err != io.EOF || !called {
		t.Errorf("the previous check was not kept: %v, called %v", err, called)
	}
}

func TestNodeIDPlain(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	if id, ok := NodeID(r); ok {
		t.Errorf("plain HTTP: NodeID = %q", id)
	}
	r.TLS = &tls.ConnectionState{}
	if id, ok := NodeID(r); ok {
		t.Errorf("no certificate: NodeID = %q", id)
	}
}
