//go:build linux

package faults

import (
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// bigMapNodes is the size of the big node maps below: about 30 MB, more than the 16 MiB
// value-log files of TestHostileBigNodeMap (the largest value Badger takes), loaded in about a
// second.
const bigMapNodes = 200_000

// mapRelay is a relay started on a 3-node map (root, src, n1); newcomer is in no map yet.
type mapRelay struct {
	p                       *proc
	cfg, api, admin         string
	nodesFile               string
	root, src, n1, newcomer *relaytest.Node
}

// startMapRelay starts a relay whose data directory is under dataParent, with the given
// storage.value_log_file_size (the largest value its store takes).
func startMapRelay(t *testing.T, dataParent, valueLogFileSize string) mapRelay {
	t.Helper()
	dir := t.TempDir()
	m := mapRelay{
		root: relaytest.NewNode("root", "root", 0), src: relaytest.NewNode("src", "root", 1),
		n1: relaytest.NewNode("n1", "root", 2), newcomer: relaytest.NewNode("newcomer", "root", 2),
		nodesFile: filepath.Join(dir, "nodes.json"), api: relaytest.FreeAddr(t), admin: relaytest.FreeAddr(t),
	}
	relaytest.WriteFileAtomic(t, m.nodesFile, relaytest.NodeMap(m.root, m.src, m.n1))
	s := baseSettings("root", filepath.Join(dataParent, "data"), m.nodesFile, m.api, m.admin)
	s["storage.value_log_file_size"] = valueLogFileSize
	m.cfg = writeConfig(t, dir, "relay.yaml", s)
	m.p = startRelay(t, "relay", m.cfg, m.api, m.admin)
	return m
}

// TestHostileBigNodeMap loads a 200,000-node map (about 30 MB, more than the store's largest
// value) into a relay that had a small one, kills the relay with SIGKILL, replaces the nodes file
// with garbage and starts it again: it routes with the big map, the newest that was in force,
// kept in its store. (It used to keep the map as one value: the big map could not be saved, and
// the restart came back with the small, older one.)
func TestHostileBigNodeMap(t *testing.T) {
	needBinary(t)
	began := time.Now()
	m := startMapRelay(t, t.TempDir(), "16MiB")
	p, cfg, api, admin, nodes := m.p, m.cfg, m.api, m.admin, m.nodesFile
	rootN, src, n1, newcomer := m.root, m.src, m.n1, m.newcomer

	big := relaytest.BigNodeMap(bigMapNodes, rootN, src, n1, newcomer)
	want := bigMapNodes + 4
	relaytest.WriteFileAtomic(t, nodes, big)
	loadStart := time.Now()
	reload(t, p.api)
	loaded := time.Since(loadStart)
	if st := status(t, p.api).NodeMap; st.Nodes != want || st.Digest != sha256Hex(big) || !st.Kept {
		t.Fatalf("after the reload: %+v, want the big map (%d nodes) in force and kept", st, want)
	}
	t.Logf("%d-byte map (%d nodes) loaded and kept in %s", len(big), want, loaded.Round(time.Millisecond))

	p.kill9(t)
	garbage := make([]byte, 64<<10)
	_, _ = rand.Read(garbage)
	relaytest.WriteFileAtomic(t, nodes, garbage)
	restart := time.Now()
	p = startRelay(t, "relay (restarted)", cfg, api, admin)
	st := status(t, p.api).NodeMap
	if st.Nodes != want || st.Digest != sha256Hex(big) || st.LastError == "" || !st.Kept {
		t.Fatalf("restarted with a garbage nodes file: %+v, want the big map (%d nodes, digest %s) and the file's error", st, want, sha256Hex(big))
	}
	t.Logf("restarted on the kept map in %s", time.Since(restart).Round(time.Millisecond))
	client := newClient(10 * time.Second)
	body := relaytest.SignedBody(t, src, []byte("for the newcomer"), "1d")
	if code, b, err := do(client, http.MethodPut, filesURL(p.api, newcomer.ID, src.ID, "hello"), body); err != nil || code != http.StatusOK {
		t.Errorf("PUT for a node only in the big map: %d %s %v, want 200", code, b, err)
	}
	if code, _, err := do(client, http.MethodPut, filesURL(p.api, "ghost", src.ID, "hello"), body); err != nil || code != http.StatusNotFound {
		t.Errorf("PUT for a node in no map: %d %v, want 404", code, err)
	}
	p.stop(t)
	t.Logf("test took %s", time.Since(began).Round(time.Millisecond))
}

// TestHostileBigNodeMapDiskFull loads a big node map that cannot be kept: the data directory
// (a tmpfs) has too little space left above the free-space reserve. The map is in force, and the
// status says it is not kept; after SIGKILL and a restart with a garbage nodes file, the relay
// does not route with the small, older map its store still holds: it routes no node and says
// why. Once there is space again, the next load keeps the map.
func TestHostileBigNodeMapDiskFull(t *testing.T) {
	needBinary(t)
	began := time.Now()
	mnt := mountTmpfs(t, "64m")
	m := startMapRelay(t, mnt, "1MiB") // a small free-space reserve
	p, cfg, api, admin, nodes := m.p, m.cfg, m.api, m.admin, m.nodesFile
	rootN, src, n1, newcomer := m.root, m.src, m.n1, m.newcomer
	if st := status(t, p.api).NodeMap; !st.Kept {
		t.Fatalf("small map not kept: %+v", st)
	}

	// Leave 4 MiB: room for small records above the reserve, not for a 3 MB map.
	big := relaytest.BigNodeMap(20_000, rootN, src, n1, newcomer)
	filler := filepath.Join(mnt, "filler")
	fillTo(t, filler, 4<<20)
	relaytest.WriteFileAtomic(t, nodes, big)
	reload(t, p.api)
	st := status(t, p.api).NodeMap
	if st.Nodes != 20_004 || st.Kept || !strings.Contains(st.KeepError, "not enough free disk space") ||
		!strings.Contains(st.KeepError, "marked superseded") {
		t.Fatalf("big map on a full disk: %+v, want it in force, not kept, and keep_error saying why", st)
	}
	t.Logf("keep_error: %s", st.KeepError)

	p.kill9(t)
	relaytest.WriteFileAtomic(t, nodes, []byte("{garbage"))
	p = startRelay(t, "relay (restarted)", cfg, api, admin)
	st = status(t, p.api).NodeMap
	if st.Nodes != 0 || st.Kept || !strings.Contains(st.LastError, "older than the map last in force (sha256 "+sha256Hex(big)) {
		t.Fatalf("restarted with a garbage file and a superseded map kept: %+v, want no node and last_error saying why", st)
	}
	t.Logf("last_error: %s", st.LastError)
	client := newClient(10 * time.Second)
	body := relaytest.SignedBody(t, src, []byte("x"), "1d")
	for _, target := range []string{n1.ID, newcomer.ID} {
		if code, _, err := do(client, http.MethodPut, filesURL(p.api, target, src.ID, "x"), body); err != nil || code != http.StatusNotFound {
			t.Errorf("PUT for %s with no map in force: %d %v, want 404", target, code, err)
		}
	}

	// Space again: the map loads and is kept.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	relaytest.WriteFileAtomic(t, nodes, big)
	reload(t, p.api)
	if st := status(t, p.api).NodeMap; st.Nodes != 20_004 || !st.Kept || st.KeepError != "" || st.LastError != "" {
		t.Fatalf("with space again: %+v, want the big map in force and kept", st)
	}
	if code, b, err := do(client, http.MethodPut, filesURL(p.api, newcomer.ID, src.ID, "x"), body); err != nil || code != http.StatusOK {
		t.Errorf("PUT for the newcomer: %d %s %v, want 200", code, b, err)
	}
	p.stop(t)
	t.Logf("test took %s", time.Since(began).Round(time.Millisecond))
}

// reload asks the relay to reload its config and node map, and requires success (the answer
// comes once the map is in force and the relay tried to keep it).
func reload(t *testing.T, base string) {
	t.Helper()
	code, body, err := do(newClient(time.Minute), http.MethodPost, base+"/rudder/relay-api/1/system/reload", nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST reload: %d %s %v", code, body, err)
	}
}

// fillTo writes path until the file system holding it has about leave bytes free.
func fillTo(t *testing.T, path string, leave int64) {
	t.Helper()
	n := freeBytes(t, filepath.Dir(path)) - leave
	if n <= 0 {
		t.Fatalf("%d bytes free, want more than %d", freeBytes(t, filepath.Dir(path)), leave)
	}
	if err := os.WriteFile(path, make([]byte, n), 0o600); err != nil {
		t.Fatalf("fill %s with %d bytes: %v", path, n, err)
	}
	t.Logf("filled: %d KiB free", freeBytes(t, filepath.Dir(path))>>10)
}
