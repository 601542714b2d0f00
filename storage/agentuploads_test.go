package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func putAgent(t testing.TB, s *Store, kind, name string, content []byte) bool {
	t.Helper()
	u, err := s.NewUpload(int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(content); err != nil {
		t.Fatal(err)
	}
	created, err := s.PutAgentUpload(u, kind, name)
	if err != nil {
		t.Fatalf("PutAgentUpload %s/%s: %v", kind, name, err)
	}
	return created
}

func nextAgent(t testing.TB, s *Store, kind string) AgentUpload {
	t.Helper()
	a, ok, err := s.NextAgentUpload(kind)
	if err != nil || !ok {
		t.Fatalf("NextAgentUpload %s: %v, %v", kind, ok, err)
	}
	return a
}

func readAgent(t testing.TB, s *Store, a AgentUpload) []byte {
	t.Helper()
	r, err := s.OpenAgentUpload(a)
	if err != nil {
		t.Fatalf("OpenAgentUpload %s/%s: %v", a.Kind, a.Name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// listAgent returns "kind/name" of the kept uploads, in the order AgentUploads gives.
func listAgent(t testing.TB, s *Store, kind string, failed bool) []string {
	t.Helper()
	var names []string
	if err := s.AgentUploads(kind, failed, func(a AgentUpload) bool {
		if a.Failed != failed {
			t.Errorf("%s/%s listed with failed=%v, is %v", a.Kind, a.Name, failed, a.Failed)
		}
		names = append(names, a.Kind+"/"+a.Name)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return names
}

func wantStats(t testing.TB, s *Store, waiting, failed, bytes int64) AgentUploadStats {
	t.Helper()
	st := s.AgentUploadStats()
	if st.Waiting != waiting || st.Failed != failed || st.WaitingBytes != bytes {
		t.Fatalf("stats %+v, want waiting %d failed %d bytes %d", st, waiting, failed, bytes)
	}
	if (waiting == 0) != st.OldestWaiting.IsZero() {
		t.Fatalf("stats %+v: oldest waiting with %d waiting", st, waiting)
	}
	return st
}

func TestAgentUploadsLifecycle(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	big := randomBytes(t, 10<<10) // three chunks of 4 KiB
	if !putAgent(t, s, "reports", "r1", []byte("one")) || !putAgent(t, s, "reports", "r2", big) ||
		!putAgent(t, s, "reports", "r3", []byte("three")) || !putAgent(t, s, "inventories", "i1", []byte("inv")) {
		t.Fatal("a new name was not created")
	}
	wantStats(t, s, 4, 0, int64(3+len(big)+5+3))
	if got, want := listAgent(t, s, "", false), []string{"reports/r1", "reports/r2", "reports/r3", "inventories/i1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("all waiting %v, want %v (arrival order)", got, want)
	}
	if _, ok, err := s.NextAgentUpload("inventory-updates"); ok || err != nil {
		t.Fatalf("empty kind: %v, %v", ok, err)
	}

	// A failing head keeps its place.
	head := nextAgent(t, s, "reports")
	if head.Name != "r1" || head.Attempts != 0 || head.Due.Before(head.Received) || string(readAgent(t, s, head)) != "one" {
		t.Fatalf("head %+v", head)
	}
	due := time.Now().Add(time.Minute)
	if err := s.RetryAgentUpload(head, due, "503 Service Unavailable"); err != nil {
		t.Fatal(err)
	}
	again := nextAgent(t, s, "reports")
	if again.Name != "r1" || again.Attempts != 1 || !again.Due.Equal(due) || again.LastError != "503 Service Unavailable" {
		t.Fatalf("retried head %+v", again)
	}
	if err := s.RetryAgentUpload(again, due, strings.Repeat("x", 5000)); err != nil {
		t.Fatal(err)
	}
	if a := nextAgent(t, s, "reports"); a.Attempts != 2 || len(a.LastError) != maxAgentUploadText {
		t.Fatalf("second retry: %d attempts, error of %d bytes", a.Attempts, len(a.LastError))
	}

	// Failed: kept aside, out of the order, listed.
	if err := s.FailAgentUpload(head, "unknown node"); err != nil {
		t.Fatal(err)
	}
	if err := s.FailAgentUpload(head, "again"); err != nil {
		t.Fatalf("failing a failed upload: %v", err)
	}
	if a := nextAgent(t, s, "reports"); a.Name != "r2" || !bytes.Equal(readAgent(t, s, a), big) {
		t.Fatalf("after the head failed, next is %s", a.Name)
	}
	wantStats(t, s, 3, 1, int64(len(big)+5+3))
	var failed AgentUpload
	_ = s.AgentUploads("reports", true, func(a AgentUpload) bool { failed = a; return false })
	if !failed.Failed || failed.FailReason != "unknown node" || failed.Attempts != 2 || failed.Name != "r1" {
		t.Fatalf("failed upload %+v", failed)
	}
	if string(readAgent(t, s, head)) != "one" {
		t.Fatal("a failed upload's content is not readable (by its waiting version)")
	}
	if err := s.RetryAgentUpload(head, due, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("retry of a failed upload: %v", err)
	}

	// A replace goes to the end of its kind and takes a failed one's name back.
	r2 := nextAgent(t, s, "reports")
	if putAgent(t, s, "reports", "r2", []byte("two again")) {
		t.Fatal("replace reported created")
	}
	if putAgent(t, s, "reports", "r1", []byte("one again")) {
		t.Fatal("replace of a failed upload reported created")
	}
	wantStats(t, s, 4, 0, int64(5+3+len("two again")+len("one again")))
	if got, want := listAgent(t, s, "reports", false), []string{"reports/r3", "reports/r2", "reports/r1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after replace %v, want %v", got, want)
	}
	if _, err := s.OpenAgentUpload(r2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open of a replaced version: %v", err)
	}
	if err := s.DeleteAgentUpload(r2); err != nil {
		t.Fatalf("delete of a replaced version: %v", err)
	}
	if err := s.RetryAgentUpload(r2, due, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("retry of a replaced version: %v", err)
	}
	if err := s.FailAgentUpload(r2, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fail of a replaced version: %v", err)
	}
	wantStats(t, s, 4, 0, int64(5+3+len("two again")+len("one again")))

	// Delivered: removed, the next one comes.
	for _, want := range []string{"r3", "r2", "r1"} {
		a := nextAgent(t, s, "reports")
		if a.Name != want {
			t.Fatalf("next %s, want %s", a.Name, want)
		}
		if err := s.DeleteAgentUpload(a); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAgentUpload(a); err != nil {
			t.Fatalf("second delete: %v", err)
		}
	}
	if _, ok, _ := s.NextAgentUpload("reports"); ok {
		t.Fatal("reports left after delivery")
	}
	wantStats(t, s, 1, 0, 3)

	// What was replaced or removed is swept.
	if n, err := s.SweepOrphans(context.Background()); err != nil || n < 5 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	if n := countKeys(t, s, prefixChunk); n != 1 {
		t.Fatalf("%d chunks left, want 1 (inventories/i1)", n)
	}
	if n := countKeys(t, s, prefixAgentName); n != 1 {
		t.Fatalf("%d name entries left, want 1", n)
	}
}

func TestAgentUploadsOldestWaiting(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	putAgent(t, s, "reports", "a", []byte("a"))
	time.Sleep(2 * time.Millisecond)
	putAgent(t, s, "inventories", "b", []byte("b"))
	time.Sleep(2 * time.Millisecond)
	putAgent(t, s, "reports", "c", []byte("c"))
	a, b, c := nextAgent(t, s, "reports"), nextAgent(t, s, "inventories"), AgentUpload{}
	if st := s.AgentUploadStats(); !st.OldestWaiting.Equal(a.Received) {
		t.Fatalf("oldest %v, want %v", st.OldestWaiting, a.Received)
	}
	if err := s.FailAgentUpload(a, "x"); err != nil {
		t.Fatal(err)
	}
	if st := s.AgentUploadStats(); !st.OldestWaiting.Equal(b.Received) {
		t.Fatalf("oldest %v, want %v (b)", st.OldestWaiting, b.Received)
	}
	c = nextAgent(t, s, "reports")
	if st := s.AgentUploadStatsOf("reports"); st.Waiting != 1 || st.Failed != 1 || !st.OldestWaiting.Equal(c.Received) {
		t.Fatalf("reports stats %+v, want oldest %v", st, c.Received)
	}
	if err := s.DeleteAgentUpload(b); err != nil {
		t.Fatal(err)
	}
	if st := s.AgentUploadStats(); !st.OldestWaiting.Equal(c.Received) {
		t.Fatalf("oldest %v, want %v (c)", st.OldestWaiting, c.Received)
	}
	if st := s.AgentUploadStatsOf("nothing"); st != (AgentUploadStats{}) {
		t.Fatalf("unknown kind: %+v", st)
	}
}

func TestAgentUploadsBound(t *testing.T) {
	s := openTest(t, t.TempDir(), func(o *Options) { o.MaxAgentUploads = 2 })
	defer s.Close()
	putAgent(t, s, "reports", "a", []byte("a"))
	putAgent(t, s, "inventories", "b", []byte("b"))
	if err := s.FailAgentUpload(nextAgent(t, s, "reports"), "x"); err != nil {
		t.Fatal(err)
	}
	u, err := s.NewUpload(1)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = u.Write([]byte("c"))
	if _, err := s.PutAgentUpload(u, "reports", "c"); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("beyond the bound (a failed one counts): %v", err)
	}
	if putAgent(t, s, "reports", "a", []byte("a2")) || putAgent(t, s, "inventories", "b", []byte("b2")) {
		t.Fatal("a replace reported created")
	}
	wantStats(t, s, 2, 0, 4)
	if err := s.DeleteAgentUpload(nextAgent(t, s, "reports")); err != nil {
		t.Fatal(err)
	}
	putAgent(t, s, "reports", "c", []byte("c"))
	if _, err := s.SweepOrphans(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, s, prefixChunk); n != 2 {
		t.Fatalf("%d chunks after the sweep, want 2 (b2, c; nothing of the refused upload)", n)
	}
}

func TestAgentUploadsBadNames(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	for _, tc := range []struct{ kind, name string }{
		{"", "a"}, {"a/b", "c"}, {"reports", ""}, {"reports", strings.Repeat("n", maxAgentUploadName+1)},
		{strings.Repeat("k", 65), "a"},
	} {
		u, err := s.NewUpload(1)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = u.Write([]byte("x"))
		if _, err := s.PutAgentUpload(u, tc.kind, tc.name); err == nil {
			t.Errorf("kind %q name of %d bytes accepted", tc.kind, len(tc.name))
		}
	}
	// Names are the rest of their key: any byte.
	for _, name := range []string{"a/b", "..", "x\x00y", "\xff"} {
		putAgent(t, s, "reports", name, []byte(name))
	}
	if got := listAgent(t, s, "reports", false); len(got) != 4 || got[0] != "reports/a/b" {
		t.Fatalf("odd names: %q", got)
	}
	wantStats(t, s, 4, 0, int64(3+2+3+1))
}

func TestAgentUploadsExpire(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	putAgent(t, s, "reports", "old1", []byte("1"))
	putAgent(t, s, "reports", "old2", []byte("2"))
	putAgent(t, s, "inventories", "old3", []byte("3"))
	if err := s.FailAgentUpload(nextAgent(t, s, "reports"), "x"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(2 * time.Millisecond)
	putAgent(t, s, "reports", "new1", []byte("4"))
	putAgent(t, s, "inventories", "new2", []byte("5"))

	if n, err := s.ExpireAgentUploadsOf("reports", cutoff, 1); err != nil || n != 1 {
		t.Fatalf("expire with limit 1: %d, %v", n, err)
	}
	if n, err := s.ExpireAgentUploads(cutoff, 0); err != nil || n != 2 {
		t.Fatalf("expire: %d, %v", n, err)
	}
	if n, err := s.ExpireAgentUploads(cutoff, 0); err != nil || n != 0 {
		t.Fatalf("expire again: %d, %v", n, err)
	}
	if got, want := listAgent(t, s, "", false), []string{"reports/new1", "inventories/new2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("left %v, want %v", got, want)
	}
	wantStats(t, s, 2, 0, 2)
	// The names are free: a new upload of an expired name is created.
	if !putAgent(t, s, "reports", "old1", []byte("1")) {
		t.Fatal("expired name not freed")
	}
}

// seedAgent puts a mix of waiting, retried and failed uploads, and returns what the store
// lists of them.
func seedAgent(t *testing.T, s *Store) (waiting, failed []AgentUpload) {
	t.Helper()
	for i := range 6 {
		putAgent(t, s, []string{"reports", "inventories", "inventory-updates"}[i%3], fmt.Sprintf("n%d", i), bytes.Repeat([]byte{byte(i)}, 100*i+1))
	}
	if err := s.RetryAgentUpload(nextAgent(t, s, "reports"), time.Now().Add(time.Hour), "down"); err != nil {
		t.Fatal(err)
	}
	if err := s.FailAgentUpload(nextAgent(t, s, "inventories"), "local"); err != nil {
		t.Fatal(err)
	}
	return listAll(t, s)
}

func listAll(t *testing.T, s *Store) (waiting, failed []AgentUpload) {
	t.Helper()
	for _, f := range []bool{false, true} {
		if err := s.AgentUploads("", f, func(a AgentUpload) bool {
			if f {
				failed = append(failed, a)
			} else {
				waiting = append(waiting, a)
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	return waiting, failed
}

func checkAgentState(t *testing.T, s *Store, waiting, failed []AgentUpload, stats AgentUploadStats) {
	t.Helper()
	w, f := listAll(t, s)
	if !reflect.DeepEqual(w, waiting) || !reflect.DeepEqual(f, failed) {
		t.Fatalf("after reopen:\nwaiting %+v\nfailed %+v\nwant\n%+v\n%+v", w, f, waiting, failed)
	}
	if st := s.AgentUploadStats(); st.Waiting != stats.Waiting || st.Failed != stats.Failed ||
		st.WaitingBytes != stats.WaitingBytes || !st.OldestWaiting.Equal(stats.OldestWaiting) {
		t.Fatalf("stats %+v, want %+v", st, stats)
	}
	for _, a := range w {
		if got := readAgent(t, s, a); len(got) != int(a.Size) {
			t.Fatalf("%s: %d bytes, want %d", a.Name, len(got), a.Size)
		}
	}
}

func TestAgentUploadsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	waiting, failed := seedAgent(t, s)
	stats := wantStats(t, s, 5, 1, int64(1+201+301+401+501))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	defer s.Close()
	checkAgentState(t, s, waiting, failed, stats)
	if a := nextAgent(t, s, "reports"); a.Attempts != 1 || a.LastError != "down" || a.Due.Before(time.Now()) {
		t.Fatalf("retry state lost: %+v", a)
	}
	// New uploads still come after the old ones.
	putAgent(t, s, "reports", "later", []byte("x"))
	if got := listAgent(t, s, "reports", false); got[len(got)-1] != "reports/later" {
		t.Fatalf("order after restart: %v", got)
	}
}

func TestAgentUploadsSurviveBackupRestore(t *testing.T) {
	src := openTest(t, t.TempDir())
	waiting, failed := seedAgent(t, src)
	stats := src.AgentUploadStats()
	var backup bytes.Buffer
	if err := src.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	src.Close()
	dst := openTest(t, t.TempDir())
	defer dst.Close()
	putAgent(t, dst, "reports", "to be dropped", []byte("x"))
	if err := dst.Restore(bytes.NewReader(backup.Bytes()), true); err != nil {
		t.Fatal(err)
	}
	checkAgentState(t, dst, waiting, failed, stats)
}

// TestAgentUploadsConcurrently puts, replaces and delivers from several goroutines: the
// counters stay what the records say.
func TestAgentUploadsConcurrently(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				kind := []string{"reports", "inventories"}[i%2]
				u, err := s.NewUpload(-1)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = u.Write(bytes.Repeat([]byte("x"), i+w))
				if _, err := s.PutAgentUpload(u, kind, fmt.Sprintf("n%d", i%7)); err != nil {
					t.Error(err)
					return
				}
				if i%5 == 0 {
					if a, ok, err := s.NextAgentUpload(kind); err == nil && ok {
						if err := s.DeleteAgentUpload(a); err != nil {
							t.Error(err)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	waiting, _ := listAll(t, s)
	var bytes int64
	for _, a := range waiting {
		bytes += a.Size
	}
	st := wantStats(t, s, int64(len(waiting)), 0, bytes)
	var oldest time.Time
	for _, a := range waiting {
		if oldest.IsZero() || a.Received.Before(oldest) {
			oldest = a.Received
		}
	}
	if !st.OldestWaiting.Equal(oldest) {
		t.Fatalf("oldest %v, want %v", st.OldestWaiting, oldest)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, s.opts.Dir)
	defer s.Close()
	wantStats(t, s, int64(len(waiting)), 0, bytes)
}

func sampleAgentUpload() AgentUpload {
	return AgentUpload{Kind: "reports", Name: "2026-01-01T00:00:00+00:00@root.log.gz", Size: 123,
		Received: time.Unix(0, 1700000000123456789), Due: time.Unix(0, 1700000060000000000), Attempts: 3,
		LastError: "503", seq: 77, upload: 99, chunks: 1}
}

func TestDecodeAgentUploadBadInput(t *testing.T) {
	a := sampleAgentUpload()
	good := encodeAgentUpload(a)
	if got, err := decodeAgentUpload(a.key(), good); err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("round trip %+v, %v; want %+v", got, err, a)
	}
	failed := a
	failed.Failed, failed.FailReason = true, "unknown node"
	if got, err := decodeAgentUpload(failed.key(), encodeAgentUpload(failed)); err != nil || !reflect.DeepEqual(got, failed) {
		t.Fatalf("failed round trip %+v, %v; want %+v", got, err, failed)
	}
	rec := func(edit func(*AgentUpload)) []byte { b := a; edit(&b); return encodeAgentUpload(b) }
	for _, tc := range []struct {
		name, want string
		key, b     []byte
	}{
		{"empty", "record truncated", a.key(), nil},
		{"version 1", "unknown record version", a.key(), []byte(`{"v":1}`)},
		{"truncated", "record truncated", a.key(), good[:len(good)-1]},
		{"trailing", "bytes after the record", a.key(), append(append([]byte(nil), good...), 0)},
		{"negative size", "size -1", a.key(), rec(func(b *AgentUpload) { b.Size = -1 })},
		{"negative attempts", "attempts", a.key(), rec(func(b *AgentUpload) { b.Attempts = -1 })},
		{"empty name", "bad name", a.key(), rec(func(b *AgentUpload) { b.Name = "" })},
		{"short key", "bad key", []byte("u/x"), good},
		{"other prefix", "bad key", []byte("f/reports/12345678"), good},
		{"no kind", "bad key", agentKey(false, "", 1), good},
		{"kind with slash", "bad key", agentKey(false, "a/b", 1), good},
	} {
		if _, err := decodeAgentUpload(tc.key, tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

func FuzzDecodeAgentUpload(f *testing.F) {
	a := sampleAgentUpload()
	f.Add(a.key(), encodeAgentUpload(a))
	f.Add([]byte("U/inventories/\x00\x00\x00\x00\x00\x00\x00\x01"), []byte{2, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, key, b []byte) {
		a, err := decodeAgentUpload(key, b)
		if err != nil {
			return
		}
		if !bytes.Equal(a.key(), key) {
			t.Fatalf("decoded %+v from key %q: key %q", a, key, a.key())
		}
		again, err := decodeAgentUpload(a.key(), encodeAgentUpload(a))
		if err != nil || !reflect.DeepEqual(a, again) {
			t.Fatalf("re-encoded record reads %+v, %v; want %+v", again, err, a)
		}
	})
}

// BenchmarkNextAgentUpload reads the head of a kind after 20000 uploads before it were
// delivered: from the head the store knows (NextAgentUpload), and from the start of the
// kind's keys, where the engine skips the deleted keys one by one until compaction.
func BenchmarkNextAgentUpload(b *testing.B) {
	s := openTest(b, b.TempDir(), func(o *Options) { o.SyncWrites = false })
	defer s.Close()
	const n = 20000
	for i := range n + 1 {
		putAgent(b, s, "reports", fmt.Sprintf("r%06d", i), []byte("x"))
	}
	for range n {
		a, _, err := s.NextAgentUpload("reports")
		if err != nil {
			b.Fatal(err)
		}
		if err := s.DeleteAgentUpload(a); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("from-head", func(b *testing.B) {
		for b.Loop() {
			if a, ok, err := s.NextAgentUpload("reports"); err != nil || !ok || a.Name != fmt.Sprintf("r%06d", n) {
				b.Fatal(a.Name, ok, err)
			}
		}
	})
	b.Run("from-start", func(b *testing.B) {
		for b.Loop() {
			if a, ok, err := s.agentHead("reports", 0); err != nil || !ok || a.Name != fmt.Sprintf("r%06d", n) {
				b.Fatal(a.Name, ok, err)
			}
		}
	})
}
