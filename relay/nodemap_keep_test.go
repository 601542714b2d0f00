package relay_test

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/relaytest"
	"github.com/keel-relay/keel/storage"
)

// smallValues makes the store's largest value 1 MiB (storage.value_log_file_size, the smallest
// accepted), so that a node map of a few MiB is bigger than any one value.
func smallValues(c *config.Config) { c.Storage.ValueLogFileSize = config.MiB }

// TestRestartKeepsBigNodeMap loads a node map bigger than the store's largest value after a
// small one, then restarts the relay with the nodes file broken: it routes with the big map,
// the newest that was in force. (The map used to be kept as one value: saving the big one
// failed, and the restart came back with the small, older map.)
func TestRestartKeepsBigNodeMap(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	src := relaytest.NewNode("src", "root", 1)
	n1 := relaytest.NewNode("n1", "root", 2)
	newcomer := relaytest.NewNode("newcomer", "root", 2)
	small := relaytest.NodeMap(root, n1, src)
	big := relaytest.BigNodeMap(20_000, root, n1, src, newcomer)
	if len(big) <= int(config.MiB) {
		t.Fatalf("the big map is %d bytes, want more than the 1 MiB value limit", len(big))
	}
	r := startRelay(t, "root", small, smallValues)
	if st := status(t, r).NodeMap; !st.Kept || st.KeepError != "" {
		t.Fatalf("small map at start: %+v, want it kept", st)
	}
	cfg := r.Config
	relaytest.WriteFileAtomic(t, cfg.NodesFile, big)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	st := status(t, r).NodeMap
	if st.Nodes != 20_004 || st.Digest != sha256hex(big) || !st.Kept || st.KeepError != "" {
		t.Fatalf("after loading the big map: %+v, want it in force (20004 nodes) and kept", st)
	}
	// Kept once: loading it again writes nothing.
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if n := strings.Count(r.LogText(), "node map kept in the store"); n != 2 {
		t.Errorf("the log says %d times that a map was kept, want 2 (the small map, the big one once)", n)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	if err := os.WriteFile(cfg.NodesFile, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = relaytest.Start(t, cfg)
	st = status(t, r).NodeMap
	if st.Nodes != 20_004 || st.Digest != sha256hex(big) || !st.Kept || !strings.Contains(st.LastError, "invalid JSON") {
		t.Fatalf("restarted with a broken nodes file: %+v, want the big map (20004 nodes, digest %s), kept, and the file's error",
			st, sha256hex(big))
	}
	if a := put(t, r, "/shared-files/newcomer/src/f?ttl=1h", relaytest.SignedBody(t, src, []byte("hello"), "")); a.code != http.StatusOK {
		t.Errorf("PUT for a node only in the big map: %d %s, want 200", a.code, a.body)
	}
}

// TestRestartRefusesSupersededNodeMap restarts a relay, with its nodes file broken, after it
// had a newer map in force than the one its store keeps (the relay died while keeping it, or
// could not keep it): it does not route with the older map, and says why.
func TestRestartRefusesSupersededNodeMap(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	src := relaytest.NewNode("src", "root", 1)
	n1 := relaytest.NewNode("n1", "root", 2)
	old := relaytest.NodeMap(root, n1, src)
	r := startRelay(t, "root", old, nil)
	cfg := r.Config
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// What the relay writes before a newer map comes into force, then dying before it is kept.
	newer := relaytest.NodeMap(root, src)
	st, err := storage.Open(relay.StorageOptions(cfg), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.MarkNodeMapSuperseded(sha256hex(newer), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(cfg.NodesFile, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = relaytest.Start(t, cfg)
	nm := status(t, r).NodeMap
	if nm.Nodes != 0 || nm.Kept || !strings.Contains(nm.LastError, "invalid JSON") ||
		!strings.Contains(nm.LastError, "is older than the map last in force (sha256 "+sha256hex(newer)) {
		t.Fatalf("restarted with a broken file and a superseded map kept: %+v, want no node and an error saying why", nm)
	}
	if a := put(t, r, "/shared-files/n1/src/f?ttl=1h", relaytest.SignedBody(t, src, []byte("x"), "")); a.code != http.StatusNotFound {
		t.Errorf("PUT for a node of the superseded map: %d, want 404", a.code)
	}
	// A good file is loaded, and kept, as usual.
	relaytest.WriteFileAtomic(t, cfg.NodesFile, newer)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if nm := status(t, r).NodeMap; nm.Nodes != 2 || !nm.Kept || nm.LastError != "" {
		t.Errorf("after a good file: %+v", nm)
	}
}
