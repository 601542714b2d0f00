package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testOptions are the options of a test store: small chunks, then mutate.
func testOptions(dir string, mutate ...func(*Options)) Options {
	opts := DefaultOptions(dir)
	opts.ChunkSize = 4 << 10
	for _, m := range mutate {
		m(&opts)
	}
	return opts
}

func openTest(t testing.TB, dir string, mutate ...func(*Options)) *Store {
	t.Helper()
	s, err := Open(testOptions(dir, mutate...), testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func putFile(t *testing.T, s *Store, k FileKey, content []byte, expires time.Time) {
	t.Helper()
	u, err := s.NewUpload(int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(u, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	meta := FileMeta{Key: k, Header: []byte("header=rudder-signature-v1\n"), Algorithm: "sha256",
		Hash: string(sum[:]), Expires: expires, Stored: time.Now()}
	if err := s.CommitFile(u, meta); err != nil {
		t.Fatalf("CommitFile: %v", err)
	}
}

func readFile(t *testing.T, s *Store, k FileKey) []byte {
	t.Helper()
	_, r, err := s.OpenFile(k)
	if err != nil {
		t.Fatalf("OpenFile %s: %v", k, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", k, err)
	}
	return b
}

func countChunks(t *testing.T, s *Store) int {
	t.Helper()
	n, err := s.countPrefix([]byte(prefixChunk))
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func TestFileRoundTrip(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	for _, size := range []int{0, 1, 4<<10 - 1, 4 << 10, 4<<10 + 1, 100_000} {
		k := FileKey{"target", "source", "f" + string(rune('a'+size%26))}
		content := randomBytes(t, size)
		putFile(t, s, k, content, time.Now().Add(time.Hour))
		meta, err := s.StatFile(k)
		if err != nil {
			t.Fatal(err)
		}
		if meta.Size != int64(size) {
			t.Errorf("size %d: meta.Size = %d", size, meta.Size)
		}
		if got := readFile(t, s, k); !bytes.Equal(got, content) {
			t.Errorf("size %d: content differs (got %d bytes)", size, len(got))
		}
		// WriteTo path (io.Copy into a bytes.Buffer uses it).
		_, r, _ := s.OpenFile(k)
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, r); err != nil || !bytes.Equal(buf.Bytes(), content) {
			t.Errorf("size %d: WriteTo: err %v, equal %v", size, err, bytes.Equal(buf.Bytes(), content))
		}
		r.Close()
	}
}

func TestReplaceFileOrphansOldChunks(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	k := FileKey{"t", "s", "id"}
	putFile(t, s, k, randomBytes(t, 20_000), time.Now().Add(time.Hour))
	second := randomBytes(t, 9_000)
	putFile(t, s, k, second, time.Now().Add(2*time.Hour))
	if s.FileCount() != 1 {
		t.Errorf("FileCount = %d, want 1", s.FileCount())
	}
	if _, err := s.SweepOrphans(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := countChunks(t, s); got != 3 { // 9000 bytes in 4 KiB chunks
		t.Errorf("chunks after sweep = %d, want 3", got)
	}
	if !bytes.Equal(readFile(t, s, k), second) {
		t.Error("replaced file has old content")
	}
	// Only the newest expiry is indexed: expiring at +90 min must not touch the file.
	if n, err := s.ExpireFiles(time.Now().Add(90*time.Minute), 0); err != nil || n != 0 {
		t.Errorf("ExpireFiles = %d, %v; want 0", n, err)
	}
}

func TestReaderSnapshotSurvivesReplace(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	k := FileKey{"t", "s", "id"}
	first := randomBytes(t, 50_000)
	putFile(t, s, k, first, time.Now().Add(time.Hour))
	_, r, err := s.OpenFile(k)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	putFile(t, s, k, randomBytes(t, 10), time.Now().Add(time.Hour))
	if _, err := s.SweepOrphans(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, first) {
		t.Fatalf("reader opened before replace: err %v, equal %v", err, bytes.Equal(got, first))
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	u, err := s.NewUpload(-1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(randomBytes(t, 30_000)); err != nil {
		t.Fatal(err)
	}
	u.Abort()
	if got := countChunks(t, s); got != 0 {
		t.Errorf("chunks after abort = %d", got)
	}
	if n, _ := s.countPrefix([]byte(prefixOrphan)); n != 0 {
		t.Errorf("orphan markers after abort = %d", n)
	}
	if _, err := u.Write([]byte("x")); err == nil {
		t.Error("write after abort succeeded")
	}
}

// An upload interrupted by a crash (the store closed without commit) is invisible after
// reopening and its chunks are swept.
func TestInterruptedUploadIsSwept(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	u, err := s.NewUpload(-1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(randomBytes(t, 30_000)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	defer s.Close()
	if s.FileCount() != 0 {
		t.Errorf("FileCount = %d", s.FileCount())
	}
	if got := countChunks(t, s); got == 0 {
		t.Fatal("expected orphan chunks before the sweep")
	}
	n, err := s.SweepOrphans(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("SweepOrphans = %d, %v; want 1", n, err)
	}
	if got := countChunks(t, s); got != 0 {
		t.Errorf("chunks after sweep = %d", got)
	}
}

func TestSweepSparesActiveUploads(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	u, err := s.NewUpload(-1)
	if err != nil {
		t.Fatal(err)
	}
	content := randomBytes(t, 20_000)
	if _, err := u.Write(content[:10_000]); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.SweepOrphans(context.Background()); n != 0 {
		t.Fatalf("sweeper cleared %d active uploads", n)
	}
	if _, err := u.Write(content[10_000:]); err != nil {
		t.Fatal(err)
	}
	k := FileKey{"t", "s", "active"}
	if err := s.CommitFile(u, FileMeta{Key: k, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, s, k), content) {
		t.Error("content differs")
	}
}

func TestExpireFiles(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	now := time.Now()
	for i := range 600 {
		exp := now.Add(-time.Minute)
		if i%2 == 1 {
			exp = now.Add(time.Hour)
		}
		putFile(t, s, FileKey{"t", "s", string(rune('A'+i%26)) + string(rune('a'+i/26))}, []byte("x"), exp)
	}
	n, err := s.ExpireFiles(now, 0)
	if err != nil || n != 300 {
		t.Fatalf("ExpireFiles = %d, %v; want 300", n, err)
	}
	if s.FileCount() != 300 {
		t.Errorf("FileCount = %d, want 300", s.FileCount())
	}
	if _, err := s.SweepOrphans(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := countChunks(t, s); got != 300 {
		t.Errorf("chunks = %d, want 300", got)
	}
	if n, _ := s.ExpireFiles(now, 0); n != 0 {
		t.Errorf("second ExpireFiles = %d", n)
	}
	if _, err := s.CollectGarbage(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestQueue(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	k := FileKey{"far", "src", "f"}
	enqueue := func(content []byte, due time.Time) {
		t.Helper()
		u, err := s.NewUpload(int64(len(content)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Write(content); err != nil {
			t.Fatal(err)
		}
		if err := s.Enqueue(u, Job{File: k, Header: []byte("h"), Expires: time.Now().Add(time.Hour), Due: due}); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(randomBytes(t, 10_000), time.Now().Add(time.Minute))
	newest := randomBytes(t, 7_000)
	enqueue(newest, time.Now())
	if s.JobCount() != 1 {
		t.Fatalf("JobCount = %d, want 1 (the second enqueue supersedes)", s.JobCount())
	}
	// Survives a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	defer s.Close()
	if s.JobCount() != 1 {
		t.Fatalf("JobCount after reopen = %d", s.JobCount())
	}
	jobs, err := s.DueJobs(time.Now(), 10, nil)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("DueJobs = %v, %v", jobs, err)
	}
	r, err := s.OpenJob(jobs[0])
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, newest) {
		t.Error("job content is not the newest")
	}
	later := time.Now().Add(time.Hour)
	j, err := s.RescheduleJob(jobs[0], later, "503 from upstream")
	if err != nil || j.Attempts != 1 || j.LastError != "503 from upstream" {
		t.Fatalf("RescheduleJob = %+v, %v", j, err)
	}
	if jobs, _ := s.DueJobs(time.Now(), 10, nil); len(jobs) != 0 {
		t.Errorf("rescheduled job still due: %v", jobs)
	}
	if due, ok, _ := s.NextDue(); !ok || due.UnixNano() != later.UnixNano() {
		t.Errorf("NextDue = %v %v, want %v", due, ok, later)
	}
	// The stale handle refers to the old key: completing it is a no-op, the new one works.
	if _, err := s.RescheduleJob(jobs[0], later, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("reschedule of a moved job: %v, want ErrNotFound", err)
	}
	if err := s.CompleteJob(j); err != nil {
		t.Fatal(err)
	}
	if s.JobCount() != 0 {
		t.Errorf("JobCount = %d after complete", s.JobCount())
	}
	if _, err := s.SweepOrphans(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := countChunks(t, s); got != 0 {
		t.Errorf("chunks left after delivery = %d", got)
	}
}

func TestQueueBound(t *testing.T) {
	s := openTest(t, t.TempDir(), func(o *Options) { o.MaxJobs = 2 })
	defer s.Close()
	for i, want := range []error{nil, nil, ErrQueueFull} {
		u, err := s.NewUpload(1)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = u.Write([]byte("x"))
		err = s.Enqueue(u, Job{File: FileKey{"t", "s", string(rune('a' + i))}, Expires: time.Now().Add(time.Hour)})
		if !errors.Is(err, want) {
			t.Errorf("enqueue %d: %v, want %v", i, err, want)
		}
	}
	if got := countChunks(t, s); got != 2 {
		t.Errorf("chunks = %d, want 2 (the refused job's chunks are gone)", got)
	}
	// A new version of a queued file supersedes it even when the queue is full.
	u, err := s.NewUpload(1)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = u.Write([]byte("y"))
	if err := s.Enqueue(u, Job{File: FileKey{"t", "s", "a"}, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Errorf("enqueue a new version of a queued file, queue full: %v", err)
	}
	if got := s.JobCount(); got != 2 {
		t.Errorf("jobs = %d, want 2", got)
	}
}

func TestNoSpace(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	need := s.Space().Need
	s.setFreeSpace(func(string) (int64, error) { return need, nil })
	if _, err := s.NewUpload(1 << 20); !errors.Is(err, ErrNoSpace) {
		t.Errorf("NewUpload of 1 MiB with the reserve free and not a byte more: %v, want ErrNoSpace", err)
	}
	s.setFreeSpace(func(string) (int64, error) { return 1 << 30, nil })
	if _, err := s.NewUpload(1 << 20); err != nil {
		t.Errorf("NewUpload with 1 GiB free: %v", err)
	}
}

func TestBackupRestore(t *testing.T) {
	src := openTest(t, t.TempDir())
	content := randomBytes(t, 50_000)
	k := FileKey{"t", "s", "backed-up"}
	putFile(t, src, k, content, time.Now().Add(time.Hour))
	saveNodeMap(t, src, []byte(`{}`))
	var backup bytes.Buffer
	if err := src.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	src.Close()

	dst := openTest(t, t.TempDir())
	defer dst.Close()
	if err := dst.Restore(bytes.NewReader(backup.Bytes()), false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst, k), content) || dst.FileCount() != 1 {
		t.Error("restored store lacks the file")
	}
	if got := readNodeMap(t, dst); string(got) != `{}` {
		t.Errorf("restored node map: %q", got)
	}
	// A second restore into a store with data is refused unless it replaces.
	if err := dst.Restore(bytes.NewReader(backup.Bytes()), false); err == nil {
		t.Error("restore into a non-empty store succeeded")
	}
	if err := dst.Restore(bytes.NewReader(backup.Bytes()), true); err != nil {
		t.Errorf("replace restore: %v", err)
	}
	// New uploads after a restore never reuse an id of restored data.
	putFile(t, dst, FileKey{"t", "s", "new"}, []byte("new"), time.Now().Add(time.Hour))
	if !bytes.Equal(readFile(t, dst, k), content) {
		t.Error("a new upload after restore overwrote restored content")
	}
}

func TestOpenLockedDir(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	defer s.Close()
	if _, err := Open(DefaultOptions(dir), testLogger(t)); err == nil {
		t.Error("second Open of the same directory succeeded")
	}
}

// A file that fits in one chunk is written by its commit transaction alone: an upload of it
// interrupted before the commit leaves nothing behind at all.
func TestSmallUploadWritesNothingBeforeCommit(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	u, err := s.NewUpload(100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(randomBytes(t, 100)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	defer s.Close()
	chunks, markers := countChunks(t, s), 0
	if n, err := s.countPrefix([]byte(prefixOrphan)); err == nil {
		markers = int(n)
	}
	if chunks != 0 || markers != 0 {
		t.Errorf("after an interrupted small upload: %d chunks, %d orphan markers; want none", chunks, markers)
	}
}

// A backup cut short is refused before the store's data is dropped, even with replace.
func TestRestoreReplaceRefusesTruncatedBackup(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	k := FileKey{"t", "s", "keep"}
	content := randomBytes(t, 20_000)
	putFile(t, s, k, content, time.Now().Add(time.Hour))
	var backup bytes.Buffer
	if err := s.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	cut := backup.Bytes()[:backup.Len()/2]
	err := s.Restore(bytes.NewReader(cut), true)
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("Restore(truncated, replace) = %v, want a refusal that changed nothing", err)
	}
	if !bytes.Equal(readFile(t, s, k), content) || s.FileCount() != 1 {
		t.Error("the store lost its data to a refused restore")
	}
}

// TestBadgerLogLevels: Badger's warnings stay warnings, except its advice that a cache is
// small (Keel's are small on purpose), which goes to debug with Badger's info chatter.
func TestBadgerLogLevels(t *testing.T) {
	tests := []struct {
		log  func(badgerLogger)
		want slog.Level
	}{
		{func(l badgerLogger) { l.Errorf("disk %s\n", "gone") }, slog.LevelError},
		{func(l badgerLogger) { l.Warningf("value log %d truncated\n", 3) }, slog.LevelWarn},
		{func(l badgerLogger) { l.Warningf("%s might be too small. Metrics: %s\n", "Block cache", "hit: 1") }, slog.LevelDebug},
		{func(l badgerLogger) { l.Warningf("%s might be too small. Metrics: %s\n", "Index cache", "hit: 1") }, slog.LevelDebug},
		{func(l badgerLogger) { l.Warningf("Cache life expectancy (in seconds): %+v\n", 3) }, slog.LevelDebug},
		{func(l badgerLogger) { l.Infof("Replaying file id: %d\n", 1) }, slog.LevelDebug},
	}
	for i, tc := range tests {
		var buf bytes.Buffer
		tc.log(badgerLogger{slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
			t.Fatalf("case %d: %v in %q", i, err, buf.String())
		}
		if rec.Level != tc.want.String() || strings.HasSuffix(rec.Msg, "\n") {
			t.Errorf("case %d: %s %q, want level %s and no trailing newline", i, rec.Level, rec.Msg, tc.want)
		}
	}
}

// TestOldestQueued checks that OldestQueued finds the job queued first, whatever its due
// time, and reports an empty queue.
func TestOldestQueued(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	if _, ok, err := s.OldestQueued(); ok || err != nil {
		t.Fatalf("empty queue: ok %v, err %v", ok, err)
	}
	base := time.UnixMilli(time.Now().UnixMilli())
	for i, tc := range []struct {
		name   string
		queued time.Time
		due    time.Duration
	}{
		{"b", base.Add(-time.Minute), time.Hour}, // due last, queued first
		{"a", base, -time.Minute},                // due first
		{"c", base.Add(-30 * time.Second), time.Minute},
	} {
		u, err := s.NewUpload(1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		job := Job{File: FileKey{"far", "src", tc.name}, Header: []byte("h"), Expires: base.Add(time.Hour),
			Due: base.Add(tc.due), Queued: tc.queued}
		if err := s.Enqueue(u, job); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := s.OldestQueued()
	if err != nil || !ok || !got.Equal(base.Add(-time.Minute)) {
		t.Errorf("OldestQueued = %v, %v, %v; want %v", got, ok, err, base.Add(-time.Minute))
	}
}
