package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-relay/keel/relay/relaytest"
)

// TestBackupRestore takes backups offline (relay stopped) and online (through the admin
// listener of the running relay) and restores them into new data directories.
func TestBackupRestore(t *testing.T) {
	dir := t.TempDir()
	rootN := relaytest.NewNode("root", "root", 0)
	src := relaytest.NewNode("src", "root", 1)
	tgt := relaytest.NewNode("tgt", "root", 2)
	// A sub-relay nobody answers for: a file for the node below it stays queued.
	sub := relaytest.NewNode("sub", "root", 3)
	sub.Hostname = relaytest.DownAddr(t)
	below := relaytest.NewNode("below", "sub", 4)
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(rootN, src, tgt, sub, below))

	type instance struct {
		cfg, api, admin string
	}
	newInstance := func(name string) instance {
		api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
		return instance{
			cfg: writeConfig(t, dir, name+".yaml", relayConf{
				NodeID: "root", DataDir: filepath.Join(dir, name+"-data"), Nodes: nodes, Listen: api, Admin: admin,
			}),
			api: api, admin: admin,
		}
	}
	start := func(name string, in instance) *proc { return startRelay(t, name, in.cfg, in.api, in.admin) }
	files := map[string][]byte{
		"small": []byte("a small file\n"),
		"large": randomBytes(t, 700<<10), // several chunks
		"empty": {},
	}
	requireAll := func(p *proc, files map[string][]byte) {
		t.Helper()
		for id, content := range files {
			requireFile(t, p.api, tgt, src.ID, id, content)
		}
		st := status(t, p.api)
		if st.Files != int64(len(files)) || st.QueueDepth != 1 {
			t.Fatalf("files_stored %d, queue_depth %d; want %d and 1", st.Files, st.QueueDepth, len(files))
		}
	}

	a := newInstance("a")
	pa := start("relay a", a)
	for id, content := range files {
		if code, body := putFile(t, pa.api, src, tgt.ID, id, content); code != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", id, code, body)
		}
	}
	if code, body := putFile(t, pa.api, src, below.ID, "queued", []byte("for the node below the sub-relay\n")); code != http.StatusOK {
		t.Fatalf("PUT for a node below the sub-relay: %d %s", code, body)
	}
	pa.stop(t)
	// The edge signing key (created here by enroll-token) travels with the backup.
	if code, _, stderr := runCLI(t, procOptions{}, "edge", "enroll-token", "--config", a.cfg, "--tenant", "t"); code != 0 {
		t.Fatalf("enroll-token: exit %d\n%s", code, stderr)
	}
	keyA, err := os.ReadFile(filepath.Join(dir, "a-data", "edge-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	requireKey := func(name string) {
		t.Helper()
		path := filepath.Join(dir, name+"-data", "edge-signing.key")
		b, err := os.ReadFile(path)
		if err != nil || string(b) != string(keyA) {
			t.Fatalf("%s: %v; want relay a's signing key", path, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v; want mode 0600", path, fi, err)
		}
	}

	// Offline backup, restored into an empty data directory.
	offline := filepath.Join(dir, "offline.bak")
	code, stdout, stderr := runCLI(t, procOptions{}, "backup", "--config", a.cfg, offline)
	if code != 0 || !strings.Contains(stdout, "backup written to "+offline) {
		t.Fatalf("offline backup: exit %d\n%s%s", code, stdout, stderr)
	}
	if fi, err := os.Stat(offline); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}
	b := newInstance("b")
	code, stdout, stderr = runCLI(t, procOptions{}, "restore", "--config", b.cfg, offline)
	if code != 0 || !strings.Contains(stdout, "3 files, 1 queued forwards") || !strings.Contains(stdout, "edge signing key restored to ") {
		t.Fatalf("restore: exit %d\n%s%s", code, stdout, stderr)
	}
	requireKey("b")
	pb := start("relay b", b)
	requireAll(pb, files)

	// Online backup of the running relay b, with one more file, restored elsewhere.
	files["later"] = []byte("stored after the restore\n")
	if code, body := putFile(t, pb.api, src, tgt.ID, "later", files["later"]); code != http.StatusOK {
		t.Fatalf("PUT later: %d %s", code, body)
	}
	online := filepath.Join(dir, "online.bak")
	code, stdout, stderr = runCLI(t, procOptions{}, "backup", "--config", b.cfg, online)
	if code != 0 || !strings.Contains(stderr, "taking an online backup through "+b.admin) {
		t.Fatalf("online backup: exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = runCLI(t, procOptions{}, "restore", "--config", b.cfg, online)
	if code != 1 || !strings.Contains(stderr, "stop the relay first") {
		t.Errorf("restore into the store of a running relay: exit %d, want 1 and a hint\n%s", code, stderr)
	}
	// Relay c has a key of its own before the restore: the backup's replaces it, and says so.
	c := newInstance("c")
	if code, _, stderr := runCLI(t, procOptions{}, "edge", "enroll-token", "--config", c.cfg, "--tenant", "t"); code != 0 {
		t.Fatalf("enroll-token: exit %d\n%s", code, stderr)
	}
	if code, stdout, stderr := runCLI(t, procOptions{}, "restore", "--config", c.cfg, online); code != 0 || !strings.Contains(stdout, "replaced a different key") {
		t.Fatalf("restore the online backup: exit %d\n%s%s", code, stdout, stderr)
	}
	requireKey("c")
	pc := start("relay c", c)
	requireAll(pc, files)
	pc.stop(t)
	pb.stop(t)

	// A store that holds data is not overwritten without --force.
	code, _, stderr = runCLI(t, procOptions{}, "restore", "--config", a.cfg, online)
	if code != 1 || !strings.Contains(stderr, "already holds data") {
		t.Fatalf("restore into a non-empty store: exit %d, want 1 and a refusal\n%s", code, stderr)
	}
	if code, stdout, stderr := runCLI(t, procOptions{}, "restore", "--config", a.cfg, "--force", online); code != 0 {
		t.Fatalf("restore --force: exit %d\n%s%s", code, stdout, stderr)
	}
	pa = start("relay a (restored)", a)
	requireAll(pa, files)
	pa.stop(t)

	// Bad input: refused, and nothing is lost or half-written.
	garbage := filepath.Join(dir, "garbage.bak")
	if err := os.WriteFile(garbage, randomBytes(t, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.bak")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d, e := newInstance("d"), newInstance("e")
	for _, tt := range []struct {
		name string
		args []string
		msg  string
	}{
		{"restore of a file that is not a backup", []string{"restore", "--config", d.cfg, garbage}, "not a keel-relay backup"},
		{"restore --force of a file that is not a backup", []string{"restore", "--config", a.cfg, "--force", garbage}, "not a keel-relay backup"},
		{"restore --force of an empty file", []string{"restore", "--config", a.cfg, "--force", empty}, "the backup is empty"},
		{"restore of a missing file", []string{"restore", "--config", d.cfg, filepath.Join(dir, "missing.bak")}, "no such file"},
		{"backup into a missing directory", []string{"backup", "--config", a.cfg, filepath.Join(dir, "no", "such.bak")}, "no such file"},
		{"backup of a data_dir that does not exist", []string{"backup", "--config", e.cfg, filepath.Join(dir, "e.bak")}, "nothing to back up"},
	} {
		code, _, stderr := runCLI(t, procOptions{}, tt.args...)
		if code != 1 || !strings.Contains(stderr, tt.msg) {
			t.Errorf("%s: exit %d, want 1 and %q\n%s", tt.name, code, tt.msg, stderr)
		}
	}
	for _, path := range []string{filepath.Join(dir, "no"), filepath.Join(dir, "e.bak"), filepath.Join(dir, "e-data")} {
		if _, err := os.Stat(path); err == nil {
			t.Errorf("a refused command created %s", path)
		}
	}
	// The refused restores with --force dropped nothing.
	pa = start("relay a (after refused restores)", a)
	requireAll(pa, files)
}
