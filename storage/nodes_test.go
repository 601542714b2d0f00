package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// nodeMapRecord returns the record SaveNodeMap expects for content.
func nodeMapRecord(content []byte) NodeMapRecord {
	sum := sha256.Sum256(content)
	return NodeMapRecord{Source: "/etc/keel/nodes.json", LoadedAt: time.Unix(1700000000, 0).UTC(),
		Digest: hex.EncodeToString(sum[:]), Size: int64(len(content))}
}

// saveNodeMap keeps content as the node map.
func saveNodeMap(t testing.TB, s *Store, content []byte) {
	t.Helper()
	n, err := s.SaveNodeMap(bytes.NewReader(content), nodeMapRecord(content))
	if err != nil {
		t.Fatalf("SaveNodeMap (%d bytes): %v", len(content), err)
	}
	if n != int64(len(content)) {
		t.Fatalf("SaveNodeMap wrote %d bytes, want %d", n, len(content))
	}
}

// readNodeMap returns the content of the node map kept.
func readNodeMap(t testing.TB, s *Store) []byte {
	t.Helper()
	rec, r, err := s.OpenNodeMap()
	if err != nil {
		t.Fatalf("OpenNodeMap: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read the node map kept: %v", err)
	}
	if want := nodeMapRecord(b); rec.Digest != want.Digest || rec.Size != want.Size {
		t.Fatalf("node map kept: record says %d bytes, sha256 %s; content is %d bytes, sha256 %s", rec.Size, rec.Digest, want.Size, want.Digest)
	}
	return b
}

// countKeys counts the keys with prefix.
func countKeys(t testing.TB, s *Store, prefix string) int {
	t.Helper()
	n, err := s.countPrefix([]byte(prefix))
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// smallValues makes Badger's largest value 1 MiB (storage.value_log_file_size, the smallest the
// relay accepts): a node map of a few MiB is then bigger than any one value.
func smallValues(o *Options) {
	o.ValueLogFileSize = 1 << 20
	o.ChunkSize = 64 << 10
}

// bigContent is a node-map-sized content of n bytes that is not all alike.
func bigContent(t *testing.T, n int) []byte {
	t.Helper()
	return []byte(hex.EncodeToString(randomBytes(t, n/2)))
}

func TestNodeMapNone(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	if _, err := s.NodeMapInfo(); !errors.Is(err, ErrNotFound) {
		t.Errorf("NodeMapInfo on an empty store: %v, want ErrNotFound", err)
	}
	if _, _, err := s.OpenNodeMap(); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenNodeMap on an empty store: %v, want ErrNotFound", err)
	}
	if err := s.MarkNodeMapSuperseded("ab", time.Now()); err != nil {
		t.Errorf("MarkNodeMapSuperseded with no map kept: %v", err)
	}
}

// TestNodeMapBiggerThanAValue keeps a map several times Badger's largest value, and finds it
// whole after the store is reopened (a restart). Before the map was kept in chunks, saving it
// failed with "Value with size ... exceeded 1048576 limit".
func TestNodeMapBiggerThanAValue(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, smallValues)
	small, big := []byte(`{"root": {"hostname": "r", "policy-server": "root"}}`), bigContent(t, 3<<20)
	saveNodeMap(t, s, small)
	saveNodeMap(t, s, big)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, smallValues)
	defer s.Close()
	if got := readNodeMap(t, s); !bytes.Equal(got, big) {
		t.Fatalf("after a restart the store keeps %d bytes, want the %d of the last map", len(got), len(big))
	}
	rec, err := s.NodeMapInfo()
	if want := nodeMapRecord(big); err != nil || rec != want {
		t.Errorf("NodeMapInfo = %+v, %v; want %+v", rec, err, want)
	}
	// The previous map's chunks are gone, and nothing is left for the sweeper.
	if chunks, want := countKeys(t, s, prefixChunk), (len(big)+64<<10-1)/(64<<10); chunks != want {
		t.Errorf("%d chunks stored, want the %d of the map kept", chunks, want)
	}
	if n := countKeys(t, s, prefixOrphan); n != 0 {
		t.Errorf("%d orphan markers left", n)
	}
}

// TestNodeMapSaveInterrupted stops a save half way, as a crash would, and finds the previous
// map whole after a restart; the sweeper then removes what the save had written.
func TestNodeMapSaveInterrupted(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, smallValues)
	old, next := bigContent(t, 2<<20), bigContent(t, 3<<20)
	saveNodeMap(t, s, old)
	oldChunks := countKeys(t, s, prefixChunk)

	// A reader that fails half way (the file vanished, an I/O error).
	failing := io.MultiReader(bytes.NewReader(next[:len(next)/2]), iotestErrReader{errors.New("read error")})
	if _, err := s.SaveNodeMap(failing, nodeMapRecord(next)); err == nil || !strings.Contains(err.Error(), "read error") {
		t.Errorf("SaveNodeMap from a failing reader: %v", err)
	}
	// Content that is not the map announced (the file changed while it was read).
	changed := append(bytes.Clone(next[:len(next)-1]), 'x')
	if _, err := s.SaveNodeMap(bytes.NewReader(changed), nodeMapRecord(next)); err == nil || !strings.Contains(err.Error(), "changed while it was read") {
		t.Errorf("SaveNodeMap of changed content: %v", err)
	}
	if got := readNodeMap(t, s); !bytes.Equal(got, old) {
		t.Fatal("a failed save changed the map kept")
	}

	// A crash: chunks written, the switch never made.
	u, err := s.NewUpload(int64(len(next)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(next[:len(next)/2]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, smallValues)
	defer s.Close()
	if got := readNodeMap(t, s); !bytes.Equal(got, old) {
		t.Fatal("after a crash mid-save the store does not keep the previous map whole")
	}
	if _, err := s.SweepOrphans(context.Background()); err != nil {
		t.Fatal(err)
	}
	if chunks := countKeys(t, s, prefixChunk); chunks != oldChunks {
		t.Errorf("%d chunks after the sweep, want the %d of the map kept", chunks, oldChunks)
	}
}

// iotestErrReader returns err at once.
type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

// TestNodeMapSuperseded marks the kept map as older than the map in force, and keeps it marked
// when keeping the newer map fails for want of space; keeping a map clears the mark.
func TestNodeMapSuperseded(t *testing.T) {
	s := openTest(t, t.TempDir(), smallValues)
	defer s.Close()
	old, next := bigContent(t, 1<<20), bigContent(t, 2<<20)
	saveNodeMap(t, s, old)
	at := time.Unix(1700000100, 0).UTC()
	if err := s.MarkNodeMapSuperseded(nodeMapRecord(next).Digest, at); err != nil {
		t.Fatal(err)
	}
	s.setFreeSpace(func(string) (int64, error) { return 1 << 20, nil })
	if _, err := s.SaveNodeMap(bytes.NewReader(next), nodeMapRecord(next)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("SaveNodeMap with 1 MiB free: %v, want ErrNoSpace", err)
	}
	rec, err := s.NodeMapInfo()
	if err != nil || rec.Digest != nodeMapRecord(old).Digest || rec.SupersededBy != nodeMapRecord(next).Digest || !rec.SupersededAt.Equal(at) {
		t.Fatalf("after a failed save: %+v, %v; want the old map, superseded by the new one", rec, err)
	}
	if got := readNodeMap(t, s); !bytes.Equal(got, old) {
		t.Fatal("a failed save changed the map kept")
	}

	s.setFreeSpace(freeSpace)
	saveNodeMap(t, s, next)
	if rec, err := s.NodeMapInfo(); err != nil || rec.SupersededBy != "" || !rec.SupersededAt.IsZero() {
		t.Fatalf("after a save: %+v, %v; want no mark", rec, err)
	}
	if err := s.MarkNodeMapSuperseded("ab", at); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkNodeMapSuperseded("", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.NodeMapInfo(); err != nil || rec.SupersededBy != "" {
		t.Fatalf("after the mark was cleared: %+v, %v", rec, err)
	}
}

// TestNodeMapVersion1 reads a map kept by an older relay (the file in the record itself), and
// replaces it.
func TestNodeMapVersion1(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	raw := []byte(`{"root": {"hostname": "r", "policy-server": "root"}}`)
	val, err := json.Marshal(map[string]any{"v": 1, "raw": raw, "source": "/x.json", "loaded_at": time.Unix(100, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.update(func(txn *badger.Txn) error { return txn.Set([]byte(keyNodeMap), val) }); err != nil {
		t.Fatal(err)
	}
	rec, err := s.NodeMapInfo()
	if want := nodeMapRecord(raw); err != nil || rec.Digest != want.Digest || rec.Size != want.Size || rec.Source != "/x.json" {
		t.Fatalf("NodeMapInfo of a version 1 record: %+v, %v", rec, err)
	}
	if got := readNodeMap(t, s); !bytes.Equal(got, raw) {
		t.Fatalf("content of a version 1 record: %q", got)
	}
	if err := s.MarkNodeMapSuperseded("ab", time.Now()); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.NodeMapInfo(); err != nil || rec.SupersededBy != "ab" {
		t.Fatalf("marked version 1 record: %+v, %v", rec, err)
	}
	next := []byte(`{}`)
	saveNodeMap(t, s, next)
	if got := readNodeMap(t, s); !bytes.Equal(got, next) {
		t.Fatalf("after replacing a version 1 record: %q", got)
	}
}
