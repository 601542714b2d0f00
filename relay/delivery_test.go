package relay_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/admintoken"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/delivery"
	"github.com/keel-relay/keel/relay/relaytest"
	"github.com/keel-relay/keel/storage"
)

const (
	boxNode    = "0a1b2c3d-0000-4000-8000-00000000000a"
	boxUnknown = "0a1b2c3d-0000-4000-8000-0000000000ff"
)

// keepUploads puts uploads in the store of cfg before the relay starts (the PUT handler is
// another part's): kind -> name -> content.
func keepUploads(t *testing.T, cfg *config.Config, uploads [][3]string) {
	t.Helper()
	s, err := storage.Open(relay.StorageOptions(cfg), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, u := range uploads {
		up, err := s.NewUpload(int64(len(u[2])))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = up.Write([]byte(u[2]))
		if _, err := s.PutAgentUpload(up, u[0], u[1]); err != nil {
			t.Fatal(err)
		}
	}
}

// agentUploadsStatus returns the agent_uploads object of /system/status (inside relayd's
// "data" envelope or not), or nil.
func agentUploadsStatus(t *testing.T, base string) map[string]any {
	t.Helper()
	resp, err := http.Get(base + "/rudder/relay-api/1/system/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if data, ok := doc["data"].(map[string]any); ok {
		doc = data
	}
	au, _ := doc["agent_uploads"].(map[string]any)
	return au
}

// TestRelayDeliversAgentUploads runs a relay (role relay) over a store holding uploads: it
// delivers them to its upstream with upstream_auth, keeps the unknown node's report aside,
// says so in /system/status and the admin listing, and counts them in /metrics.
func TestRelayDeliversAgentUploads(t *testing.T) {
	var mu sync.Mutex
	var got []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		user, pw, _ := r.BasicAuth()
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+user+":"+pw+" "+string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	defer up.Close()
	dir := t.TempDir()
	nodes := `{"relay1": {"hostname": "relay1.test", "policy-server": "root"},
	  "` + boxNode + `": {"hostname": "a.test", "policy-server": "relay1"}}`
	cfg := relaytest.Config(t, dir, "relay1", []byte(nodes))
	cfg.Role, cfg.Upstream = config.RoleRelay, up.URL
	cfg.UpstreamAuth.PasswordFile = filepath.Join(dir, "upstream-password")
	if err := os.WriteFile(cfg.UpstreamAuth.PasswordFile, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := "2026-12-03T16:00:00+00:00@" + boxNode + ".log.gz"
	bad := "2026-12-03T16:00:00+00:00@" + boxUnknown + ".log.gz"
	keepUploads(t, cfg, [][3]string{{"reports", bad, "r0"}, {"reports", good, "r1"}, {"inventories", "n.ocs.gz", "i1"}})
	r := relaytest.Start(t, cfg)

	relaytest.Eventually(t, 10*time.Second, "2 delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 })
	want := map[string]bool{"PUT /reports/" + good + " rudder:pw r1": true, "PUT /inventories/n.ocs.gz rudder:rudder i1": true}
	mu.Lock()
	for _, g := range got {
		if !want[g] {
			t.Errorf("upstream got %q", g)
		}
	}
	mu.Unlock()

	relaytest.Eventually(t, 5*time.Second, "status", func() bool {
		au := agentUploadsStatus(t, r.URL)
		return au != nil && au["waiting"] == 0.0 && au["failed"] == 1.0 && au["waiting_bytes"] == 0.0
	})
	resp, err := http.Get(r.Admin + "/uploads?state=failed")
	if err != nil {
		t.Fatal(err)
	}
	var list []delivery.Listed
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || len(list) != 1 || list[0].Name != bad || list[0].FailReason != "unknown node "+boxUnknown {
		t.Fatalf("failed listing: %+v, %v", list, err)
	}
	text := metricsText(t, r)
	for series, want := range map[string]float64{
		`rudder_relayd_reports_total{status="forward_ok"}`:     1,
		`rudder_relayd_reports_total{status="invalid"}`:        1,
		`rudder_relayd_inventories_total{status="forward_ok"}`: 1,
		`keel_agent_uploads_failed`:                            1,
		`keel_agent_uploads_waiting{kind="reports"}`:           0,
	} {
		if v := metricValue(t, text, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
}

// TestRootHasNoDelivery: at the root, nothing is delivered and the status has no
// agent_uploads; the admin listing answers (empty), to the admin token only.
func TestRootHasNoDelivery(t *testing.T) {
	dir := t.TempDir()
	cfg := relaytest.Config(t, dir, "root", nil)
	cfg.Admin.TokenFile = filepath.Join(dir, "admin-token")
	r := relaytest.Start(t, cfg)
	if au := agentUploadsStatus(t, r.URL); au != nil {
		t.Fatalf("root status has agent_uploads %v", au)
	}
	if strings.Contains(metricsText(t, r), "keel_agent_uploads_waiting") {
		t.Fatal("root exports delivery metrics")
	}
	resp, err := http.Get(r.Admin + "/uploads")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("listing without the admin token: %d", resp.StatusCode)
	}
	tok, err := admintoken.Load(cfg.Admin.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, r.Admin+"/uploads", nil)
	tok.Set(req)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != "[]" {
		t.Fatalf("root listing: %d %s", resp.StatusCode, b)
	}
}
