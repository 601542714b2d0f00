package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-relay/keel/agent/config"
)

func TestNodeID(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, nodeID, uuidFile, want, err string
	}{
		{"node_id wins", "node1", filepath.Join(dir, "none"), "node1", ""},
		{"uuid.hive", "", write("good", "2f0b7c0e-8c5a-4b8e-9a3b-0e7e0f7d2b1a\n"), "2f0b7c0e-8c5a-4b8e-9a3b-0e7e0f7d2b1a", ""},
		{"missing", "", filepath.Join(dir, "none"), "", "node_id is not set and it cannot be read from uuid_file"},
		{"empty", "", write("empty", ""), "", "is empty or unreadable"},
		{"garbage", "", write("bad", "not a/valid id"), "", "invalid node id"},
	} {
		cfg := config.Default()
		cfg.NodeID, cfg.UUIDFile = tc.nodeID, tc.uuidFile
		got, err := NodeID(cfg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %q %v, want %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q %v, want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestLoadIdentity(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "localhost.priv")
	if out, err := exec.Command("openssl", "genrsa", "-traditional", "-des3", "-passout", "pass:Cfengine passphrase", "-out", key, "2048").CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	cfg := config.Default()
	cfg.NodeID, cfg.KeyFile = "node1", key
	id, err := LoadIdentity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if id.NodeID != "node1" || id.Hostname != host || len(id.KeyID) != 8 || id.KeyDate == "" || id.Key == nil {
		t.Errorf("identity %+v", id)
	}
	cfg.Hostname, cfg.KeyDate, cfg.KeyID = "h.example", "today", "K1"
	if id, err = LoadIdentity(cfg); err != nil || id.Hostname != "h.example" || id.KeyDate != "today" || id.KeyID != "K1" {
		t.Errorf("configured identity %+v %v", id, err)
	}
	cfg.KeyPassphrase = "wrong"
	if _, err := LoadIdentity(cfg); err == nil || !strings.Contains(err.Error(), key) {
		t.Errorf("wrong passphrase: %v, want an error naming %s", err, key)
	}
}
