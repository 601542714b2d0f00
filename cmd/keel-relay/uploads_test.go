package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/delivery"
	"github.com/keel-relay/keel/relay/relaytest"
	"github.com/keel-relay/keel/storage"
)

func TestUploadsTableGolden(t *testing.T) {
	now := time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	due := at(90 * time.Second)
	past := at(-time.Second)
	for _, tc := range []struct {
		golden, state string
		list          []delivery.Listed
	}{
		{"uploads-waiting.golden", "waiting", []delivery.Listed{
			{Kind: "reports", Name: "2026-12-03T15:00:00+00:00@0a1b2c3d-0000-4000-8000-00000000000a.log.gz", Size: 2048,
				Received: at(-time.Hour), Due: &due, Attempts: 7, LastError: "the upstream answered 503 Service Unavailable"},
			{Kind: "inventories", Name: "n1_2026-12-03T15-59-00.ocs.sign", Size: 512, Received: at(-time.Minute), Due: &past},
		}},
		{"uploads-failed.golden", "failed", []delivery.Listed{
			{Kind: "reports", Name: "2026-12-03T15:00:00+00:00@0a1b2c3d-0000-4000-8000-0000000000ff.log.gz", Size: 100,
				Received: at(-50 * time.Hour), Failed: true, FailReason: "unknown node 0a1b2c3d-0000-4000-8000-0000000000ff",
				LastError: "line one\nline two"},
		}},
	} {
		var buf bytes.Buffer
		writeUploadsTable(&buf, tc.list, tc.state, "12", now)
		golden := filepath.Join("testdata", tc.golden)
		if *updateGolden {
			if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if buf.String() != string(want) {
			t.Errorf("table differs from %s (-update rewrites it):\n%s", golden, buf.String())
		}
	}
}

// TestUploadsCLI lists the uploads of a running relay whose upstream is down: the waiting
// ones retried, the report of an unknown node kept aside.
func TestUploadsCLI(t *testing.T) {
	const (
		known   = "0a1b2c3d-0000-4000-8000-00000000000a"
		unknown = "0a1b2c3d-0000-4000-8000-0000000000ff"
	)
	dir := t.TempDir()
	nodes := `{"relay1": {"hostname": "relay1.test", "policy-server": "root"},
	  "` + known + `": {"hostname": "a.test", "policy-server": "relay1"}}`
	cfg := relaytest.Config(t, dir, "relay1", []byte(nodes))
	cfg.Role, cfg.Upstream = config.RoleRelay, "http://"+relaytest.DownAddr(t)
	cfg.Admin.TokenFile = filepath.Join(dir, "admin-token")
	s, err := storage.Open(relay.StorageOptions(cfg), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range [][2]string{
		// The unknown node's report first: a failing head holds back the reports behind it.
		{"reports", "2026-12-03T16:00:00+00:00@" + unknown + ".log.gz"},
		{"reports", "2026-12-03T16:00:00+00:00@" + known + ".log.gz"},
		{"inventories", "n.ocs.gz"},
	} {
		up, err := s.NewUpload(3)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = up.Write([]byte("abc"))
		if _, err := s.PutAgentUpload(up, u[0], u[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "relay.yaml")
	r := relaytest.Start(t, cfg)
	adminAddr := strings.TrimPrefix(r.Admin, "http://")
	uploads := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"uploads"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	writeTestConfig(t, cfgPath, cfg, adminAddr)
	relaytest.Eventually(t, 10*time.Second, "unknown node's report failed", func() bool {
		_, out, _ := uploads("--failed", "--config", cfgPath)
		return strings.Contains(out, "unknown node "+unknown) && strings.Contains(out, "1 of 1 failed upload(s)")
	})
	// Without the token (a config that names none), the relay refuses.
	if code, _, errOut := uploads("--admin", adminAddr, "--config", filepath.Join(dir, "nodes.json")); code != 1 {
		t.Fatalf("no token: %d %s", code, errOut)
	}
	code, out, errOut := uploads("--config", cfgPath)
	if code != 0 || !strings.Contains(out, "n.ocs.gz") || !strings.Contains(out, "@"+known) ||
		strings.Contains(out, unknown) || !strings.Contains(out, "2 of 2 waiting upload(s)") {
		t.Fatalf("uploads: %d\n%s%s", code, out, errOut)
	}
	relaytest.Eventually(t, 10*time.Second, "a failed attempt listed", func() bool {
		_, out, _ := uploads("--config", cfgPath, "--kind", "reports", "--json")
		var list []delivery.Listed
		return json.Unmarshal([]byte(out), &list) == nil && len(list) == 1 && list[0].Attempts > 0 &&
			strings.Contains(list[0].LastError, "connection refused")
	})
	code, out, _ = uploads("--config", cfgPath, "--limit", "1")
	if code != 0 || !strings.Contains(out, "1 of 2 waiting upload(s)") {
		t.Fatalf("--limit 1: %d\n%s", code, out)
	}
	if code, _, errOut := uploads("--config", cfgPath, "--kind", "etc"); code != 1 || !strings.Contains(errOut, "400") {
		t.Fatalf("bad kind: %d %s", code, errOut)
	}
	if code, _, _ := uploads("extra"); code != 2 {
		t.Fatalf("an argument: %d, want 2", code)
	}
}

// writeTestConfig writes a config file giving the relay's admin listener and token file.
func writeTestConfig(t *testing.T, path string, cfg *config.Config, admin string) {
	t.Helper()
	y := "node_id: " + cfg.NodeID + "\ndata_dir: " + cfg.DataDir + "\nadmin:\n  listen: " + admin +
		"\n  token_file: " + cfg.Admin.TokenFile + "\n"
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
}
