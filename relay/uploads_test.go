package relay_test

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/relaytest"
	"github.com/keel-relay/keel/storage"
)

// agentReport is a report name as agents send it.
const agentReport = "2026-12-03T10:00:00+00:00@5d1b6cd2-2b0f-4ee9-9c5b-4e0e4f7fd2a1.log.gz"

// uploadsConfig is a test relay's config with the two htpasswd files of agents' uploads
// (user "rudder", password "rudder" in the initial one; "agent", "agent-pass" in the other).
func uploadsConfig(t *testing.T, role string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	cfg := relaytest.Config(t, dir, "relay-1", nil)
	entry := func(user, pass string) []byte {
		sum := sha1.Sum([]byte(pass))
		return []byte(user + ":{SHA}" + base64.StdEncoding.EncodeToString(sum[:]) + "\n")
	}
	cfg.AgentUploads.HTPasswdInitial = filepath.Join(dir, "htpasswd-webdav-initial")
	cfg.AgentUploads.HTPasswd = filepath.Join(dir, "htpasswd-webdav")
	if err := os.WriteFile(cfg.AgentUploads.HTPasswdInitial, entry("rudder", "rudder"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.AgentUploads.HTPasswd, entry("agent", "agent-pass"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Role = role
	if role == config.RoleRelay {
		cfg.Upstream = "http://" + relaytest.DownAddr(t) // delivery fails: the uploads stay
	}
	return cfg
}

// agentPut sends method to the relay's path with the agent's Basic credentials.
func agentPut(t *testing.T, r *relaytest.Relay, method, path, user, pass string, body []byte) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, r.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestAgentUploadsRelay: a relay keeps agents' uploads in its store (201, then 204 for the
// same name), durably; every other method on the upload paths, odd ones included, is 403; a
// peer outside http.allowed_networks is 403; the outcomes are counted.
func TestAgentUploadsRelay(t *testing.T) {
	cfg := uploadsConfig(t, config.RoleRelay)
	r := relaytest.Start(t, cfg)
	body := bytes.Repeat([]byte("report line\n"), 1000)
	for i, want := range []int{http.StatusCreated, http.StatusNoContent} {
		if resp, msg := agentPut(t, r, http.MethodPut, "/reports/"+agentReport, "agent", "agent-pass", body); resp.StatusCode != want {
			t.Fatalf("PUT %d: %d %s, want %d", i, resp.StatusCode, msg, want)
		}
	}
	for _, tc := range []struct {
		method, path, user, pass string
		want                     int
	}{
		{"GET", "/reports/" + agentReport, "agent", "agent-pass", http.StatusForbidden},
		{"HEAD", "/inventories/x.ocs.gz", "rudder", "rudder", http.StatusForbidden},
		{"PROPFIND", "/inventory-updates/x", "agent", "agent-pass", http.StatusForbidden},
		{"FOO", "/reports/" + agentReport, "agent", "agent-pass", http.StatusForbidden},
		{"TRACE", "/inventories/x", "rudder", "rudder", http.StatusForbidden},
		{"PUT", "/reports/a/b", "agent", "agent-pass", http.StatusBadRequest},
		{"PUT", "/reports/" + agentReport, "rudder", "rudder", http.StatusUnauthorized},
		{"PUT", "/inventories/x.ocs.gz", "agent", "agent-pass", http.StatusUnauthorized},
		{"PUT", "/inventories/uuid.hive", "rudder", "rudder", http.StatusCreated},
		{"PUT", "/reports", "agent", "agent-pass", http.StatusNotFound},
	} {
		if resp, msg := agentPut(t, r, tc.method, tc.path, tc.user, tc.pass, []byte("x")); resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, resp.StatusCode, msg, tc.want)
		}
	}
	// A peer outside http.allowed_networks (in process: no such peer can connect here).
	for _, method := range []string{http.MethodPut, "FOO"} {
		req := httptest.NewRequest(method, "/reports/"+agentReport, bytes.NewReader(body))
		req.SetBasicAuth("agent", "agent-pass")
		req.RemoteAddr = "198.51.100.7:40000"
		w := httptest.NewRecorder()
		r.APIHandler().ServeHTTP(w, req)
		if w.Code != http.StatusForbidden {
			t.Errorf("%s from a peer not allowed: %d, want 403", method, w.Code)
		}
	}
	m := metricsText(t, r)
	for series, want := range map[string]float64{
		`keel_agent_uploads_received_total{kind="reports",result="created"}`:                1,
		`keel_agent_uploads_received_total{kind="reports",result="replaced"}`:               1,
		`keel_agent_uploads_received_total{kind="reports",result="denied"}`:                 2, // GET, FOO
		`keel_agent_uploads_received_total{kind="inventories",result="dropped"}`:            1,
		`keel_http_access_refused_total{route="agent-uploads/reports"}`:                     2,
		`keel_http_requests_total{code="403",method="other",route="agent-uploads/reports"}`: 2,
	} {
		if got := metricValue(t, m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	s, err := storage.Open(relay.StorageOptions(cfg), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var kept []storage.AgentUpload
	_ = s.AgentUploads("", false, func(a storage.AgentUpload) bool { kept = append(kept, a); return true })
	if len(kept) != 1 || kept[0].Kind != "reports" || kept[0].Name != agentReport {
		t.Fatalf("kept %+v, want the report alone", kept)
	}
	rc, err := s.OpenAgentUpload(kept[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); !bytes.Equal(b, body) {
		t.Errorf("kept %d bytes, sent %d", len(b), len(body))
	}
}

// TestAgentUploadsRoot: the root hands uploads to the Rudder server through
// agent_uploads.root_dir; with none, the upload paths answer 404.
func TestAgentUploadsRoot(t *testing.T) {
	t.Run("no root_dir", func(t *testing.T) {
		r := relaytest.Start(t, uploadsConfig(t, config.RoleRoot))
		if resp, msg := agentPut(t, r, http.MethodPut, "/reports/"+agentReport, "agent", "agent-pass", []byte("x")); resp.StatusCode != http.StatusNotFound {
			t.Errorf("PUT: %d %s, want 404", resp.StatusCode, msg)
		}
	})
	t.Run("root_dir", func(t *testing.T) {
		cfg := uploadsConfig(t, config.RoleRoot)
		cfg.AgentUploads.RootDir = t.TempDir()
		r := relaytest.Start(t, cfg)
		body := []byte("inventory bytes")
		if resp, msg := agentPut(t, r, http.MethodPut, "/inventories/node_2026.ocs.gz", "rudder", "rudder", body); resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT: %d %s, want 201", resp.StatusCode, msg)
		}
		got, err := os.ReadFile(filepath.Join(cfg.AgentUploads.RootDir, "inventories", "incoming", "node_2026.ocs.gz"))
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("handed over: %q, %v", got, err)
		}
	})
	t.Run("root_dir missing or not a directory", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), file} {
			cfg := uploadsConfig(t, config.RoleRoot)
			cfg.AgentUploads.RootDir = dir
			_, err := relay.New(cfg, relay.Options{Logger: slog.New(slog.DiscardHandler)})
			if err == nil || !strings.Contains(err.Error(), "agent_uploads.root_dir") {
				t.Errorf("root_dir %s: %v, want the start refused naming agent_uploads.root_dir", dir, err)
			}
		}
	})
}

// TestAgentUploadDelivered: an inventory PUT to a relay reaches its upstream, with the same
// name and bytes, without waiting for a retry (the PUT wakes the delivery), and leaves the
// store.
func TestAgentUploadDelivered(t *testing.T) {
	type put struct {
		path string
		body []byte
	}
	got := make(chan put, 10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- put{r.URL.Path, b}
		w.WriteHeader(http.StatusCreated)
	}))
	defer up.Close()
	cfg := uploadsConfig(t, config.RoleRelay)
	cfg.Upstream = up.URL
	cfg.Forward.MinBackoff, cfg.Forward.MaxBackoff = time.Minute, time.Minute // a retry would be too late
	r := relaytest.Start(t, cfg)
	const name = "5d1b6cd2-2b0f-4ee9-9c5b-4e0e4f7fd2a1_2026-12-03T10:00:00+00:00.ocs.gz"
	body := bytes.Repeat([]byte{0x1f, 0x8b, 7}, 5000)
	if resp, msg := agentPut(t, r, http.MethodPut, "/inventory-updates/"+name, "agent", "agent-pass", body); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d %s", resp.StatusCode, msg)
	}
	select {
	case p := <-got:
		if p.path != "/inventory-updates/"+name || !bytes.Equal(p.body, body) {
			t.Errorf("upstream got %s with %d bytes; want the same name and the %d bytes sent", p.path, len(p.body), len(body))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upload did not reach the upstream")
	}
}

// TestAgentUploadExpectContinue: through the relay's middleware, a PUT with Expect:
// 100-continue gets its 100 Continue, then 201 for the body sent after it.
func TestAgentUploadExpectContinue(t *testing.T) {
	r := relaytest.Start(t, uploadsConfig(t, config.RoleRelay))
	c, err := net.Dial("tcp", r.APIAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	body := bytes.Repeat([]byte("r"), 3000)
	auth := base64.StdEncoding.EncodeToString([]byte("agent:agent-pass"))
	fmt.Fprintf(c, "PUT /reports/%s HTTP/1.1\r\nHost: relay\r\nAuthorization: Basic %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", agentReport, auth, len(body))
	br := bufio.NewReader(c)
	for _, want := range []int{http.StatusContinue, http.StatusCreated} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Fatalf("%d, want %d", resp.StatusCode, want)
		}
		if want == http.StatusContinue {
			if _, err := c.Write(body); err != nil {
				t.Fatal(err)
			}
		}
	}
}
