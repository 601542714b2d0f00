package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestNoSpaceWhileWriting: an upload of unknown size (a chunked request) is checked against
// the free-space reserve chunk by chunk, and so is the single chunk its commit writes; the
// disk filling up during an upload of known size stops it too. Nothing becomes visible.
func TestNoSpaceWhileWriting(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	var free atomic.Int64
	free.Store(1 << 30)
	s.setFreeSpace(func(string) (int64, error) { return free.Load(), nil })
	chunk := s.Options().ChunkSize
	expires := time.Now().Add(time.Hour)

	tests := []struct {
		name  string
		size  int64 // given to NewUpload
		write int   // bytes written before the disk is full
		more  int   // bytes written after
	}{
		{"unknown size, several chunks", -1, 2 * chunk, 2 * chunk},
		{"unknown size, one chunk", -1, 0, chunk / 2},
		{"known size, disk filled meanwhile", int64(4 * chunk), 2 * chunk, 2 * chunk},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			free.Store(1 << 30)
			u, err := s.NewUpload(tt.size)
			if err != nil {
				t.Fatalf("NewUpload: %v", err)
			}
			if _, err := u.Write(make([]byte, tt.write)); err != nil {
				t.Fatalf("write with room: %v", err)
			}
			free.Store(s.Space().Need) // the reserve, and not a byte more
			_, err = u.Write(make([]byte, tt.more))
			if err == nil {
				err = s.CommitFile(u, FileMeta{Key: FileKey{"t", "s", string(rune('a' + i))}, Expires: expires})
			} else {
				u.Abort()
			}
			if !errors.Is(err, ErrNoSpace) {
				t.Fatalf("write or commit on a full disk: %v, want ErrNoSpace", err)
			}
			if n := s.FileCount(); n != 0 {
				t.Errorf("files = %d after the refusal, want 0", n)
			}
		})
	}
}

// shortOfReserve makes the store see one byte less free than a growing write needs. The
// reserve follows the size of the tables, so it is read at each call.
func shortOfReserve(s *Store) func(string) (int64, error) {
	return func(string) (int64, error) { return s.guard.need() - 1, nil }
}

// storeDigest lists every record of the store, versions included: a refused write must not
// change it.
func storeDigest(t *testing.T, s *Store) string {
	t.Helper()
	var b strings.Builder
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%q@%d %x\n", item.Key(), item.Version(), sha256.Sum256(v))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestGrowingWritesRespectTheReserve: with one byte less free than the reserve, every write
// that adds data to the store is refused with ErrNoSpace and writes nothing, while every
// write that frees space still works (or the store could never leave that state).
func TestGrowingWritesRespectTheReserve(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	now := time.Now()
	chunk := s.Options().ChunkSize
	ctx := context.Background()

	// What the writes below work on, stored while there is room.
	d := testDaemon(t, "node-1", "tenant-a")
	enroll(t, s, "jti-1", d)
	putFile(t, s, FileKey{"t", "s", "kept"}, randomBytes(t, 3*chunk), now.Add(time.Hour))
	putFile(t, s, FileKey{"t", "s", "deleted"}, randomBytes(t, 3*chunk), now.Add(time.Hour))
	putFile(t, s, FileKey{"t", "s", "expired"}, randomBytes(t, 3*chunk), now.Add(-time.Minute))
	for _, id := range []string{"taken"} {
		if err := s.AdmitChallenge(Challenge{ID: id, NodeID: "n", Expires: now.Add(time.Hour)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	queue := func(name string) Job {
		t.Helper()
		u, err := s.NewUpload(-1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Write(randomBytes(t, 2*chunk+1)); err != nil {
			t.Fatal(err)
		}
		if err := s.Enqueue(u, Job{File: FileKey{"t", "s", name}, Expires: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		jobs, err := s.DueJobs(time.Now().Add(time.Hour), 100, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if j.File.ID == name {
				return j
			}
		}
		t.Fatalf("job %s not queued", name)
		return Job{}
	}
	delivered, retried := queue("delivered"), queue("retried")
	var backup bytes.Buffer
	if err := s.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	newUpload := func(n int) *Upload {
		t.Helper()
		u, err := s.NewUpload(-1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Write(randomBytes(t, n)); err != nil {
			t.Fatal(err)
		}
		return u
	}
	chunked, small, forward, abandoned := newUpload(chunk/2), newUpload(100), newUpload(100), newUpload(2*chunk)

	s.setFreeSpace(shortOfReserve(s))
	before := storeDigest(t, s)
	growing := []struct {
		name  string
		write func() error
	}{
		{"upload of known size", func() error { _, err := s.NewUpload(1); return err }},
		{"upload of unknown size (upload id lease)", func() error { _, err := s.NewUpload(-1); return err }},
		// A full chunk is written in the background: its error comes with the next chunk.
		{"content chunk", func() error { _, err := chunked.Write(make([]byte, 2*chunk)); return err }},
		{"one-chunk file", func() error {
			return s.CommitFile(small, FileMeta{Key: FileKey{"t", "s", "small"}, Expires: now.Add(time.Hour)})
		}},
		{"forward job", func() error {
			return s.Enqueue(forward, Job{File: FileKey{"t", "s", "fwd"}, Expires: now.Add(time.Hour)})
		}},
		{"challenge", func() error {
			return s.AdmitChallenge(Challenge{ID: "refused", NodeID: "n", Expires: now.Add(time.Hour)}, nil)
		}},
		{"enrolment", func() error { return s.Enroll("jti-2", now.Add(time.Hour), testDaemon(t, "node-2", "tenant-a")) }},
		{"daemon row", func() error {
			return s.UpdateDaemon("node-1", func(d *Daemon) error { d.Label = "changed"; return nil })
		}},
		{"key rotation (key, nonce, blacklist)", func() error {
			return s.RotateKey("node-1", d.PublicKey, edgeKey(t), now.Add(time.Minute), []byte("nonce"),
				now.Add(time.Hour), "tok-2", now.Add(time.Hour))
		}},
		{"blacklist", func() error { return s.Blacklist("tok-x", now.Add(time.Hour)) }},
		{"revocation", func() error { _, err := s.Revoke("node-1", now); return err }},
		{"last-seen flush", func() error { return s.FlushLastSeen(map[string]time.Time{"node-1": now.Add(time.Minute)}) }},
		{"node map", func() error {
			content := []byte(`{"root":{"hostname":"root","policy-server":"root"}}`)
			_, err := s.SaveNodeMap(bytes.NewReader(content), nodeMapRecord(content))
			return err
		}},
		{"signing-key copy", func() error { return s.SetSigningKey([]byte("-----BEGIN PRIVATE KEY-----\n")) }},
		{"restore", func() error { return s.Restore(bytes.NewReader(backup.Bytes()), true) }},
	}
	for _, tt := range growing {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			err := tt.write()
			if !errors.Is(err, ErrNoSpace) {
				t.Fatalf("%v, want ErrNoSpace", err)
			}
			if !strings.Contains(err.Error(), "disk full: ") {
				t.Errorf("the error does not say the disk is full: %v", err)
			}
		})
	}
	if after := storeDigest(t, s); after != before {
		t.Errorf("refused writes changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	freeing := []struct {
		name  string
		write func() error
	}{
		{"take a challenge", func() error { _, err := s.TakeChallenge("taken", time.Now()); return err }},
		{"delete a file", func() error { return s.DeleteFile(FileKey{"t", "s", "deleted"}) }},
		{"expire files", func() error {
			n, err := s.ExpireFiles(time.Now(), 0)
			if err == nil && n != 1 {
				err = fmt.Errorf("expired %d files, want 1", n)
			}
			return err
		}},
		{"complete a delivered job", func() error { return s.CompleteJob(delivered) }},
		{"reschedule a job", func() error { _, err := s.RescheduleJob(retried, now.Add(time.Minute), "503"); return err }},
		{"abort an upload", func() error { abandoned.Abort(); return nil }},
		{"sweep orphans", func() error {
			n, err := s.SweepOrphans(ctx)
			if err == nil && n == 0 {
				err = errors.New("swept nothing")
			}
			return err
		}},
		{"value-log GC", func() error { _, err := s.CollectGarbage(ctx); return err }},
	}
	for _, tt := range freeing {
		t.Run("allowed/"+tt.name, func(t *testing.T) {
			if err := tt.write(); err != nil {
				t.Fatal(err)
			}
		})
	}
	if n := s.FileCount(); n != 1 {
		t.Errorf("files = %d after the deletes, want 1", n)
	}
	if n := s.JobCount(); n != 1 {
		t.Errorf("jobs = %d after the deletes, want 1", n)
	}
}

// TestDeletesBelowTheFloor: below the floor even a delete could crash the engine: the store
// releases its ballast to get room, and refuses the delete if that is not enough.
func TestDeletesBelowTheFloor(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	if err := s.AdmitChallenge(Challenge{ID: "c", NodeID: "n", Expires: time.Now().Add(time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	if sp := s.Space(); sp.Ballast == 0 || sp.Ballast != sp.BallastSize {
		t.Fatalf("ballast %d of %d bytes after open on a roomy disk", sp.Ballast, sp.BallastSize)
	}
	s.setFreeSpace(func(string) (int64, error) { return s.guard.floor - 1, nil })
	if _, err := s.TakeChallenge("c", time.Now()); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("TakeChallenge below the floor: %v, want ErrNoSpace", err)
	}
	if sp := s.Space(); sp.Ballast != 0 {
		t.Errorf("ballast %d bytes after a delete below the floor, want it released", sp.Ballast)
	}
	if _, err := os.Stat(filepath.Join(s.Options().Dir, BallastFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ballast file after its release: %v", err)
	}
	if n, err := s.PendingChallenges(time.Now()); err != nil || n != 1 {
		t.Errorf("pending challenges = %d, %v; want the refused take to leave it", n, err)
	}
}

// TestBallast follows the ballast through a full disk: built at open when there is room,
// released by an open on a full disk (which then succeeds and refuses growing writes while
// reads go on), rebuilt when space comes back, after which writes are accepted again. An open
// with neither room nor ballast fails with ErrNoSpace before the engine touches the disk.
func TestBallast(t *testing.T) {
	dir := t.TempDir()
	ballastPath := filepath.Join(dir, BallastFile)
	s := openTest(t, dir)
	putFile(t, s, FileKey{"t", "s", "f"}, []byte("content"), time.Now().Add(time.Hour))
	sp := s.Space()
	info, err := os.Stat(ballastPath)
	if err != nil || sp.Ballast != sp.BallastSize || diskBytes(info) < sp.BallastSize {
		t.Fatalf("after open: ballast %d of %d bytes, file %v (%v)", sp.Ballast, sp.BallastSize, info, err)
	}
	if need := openNeed(s.opts, s.guard.tables()); sp.BallastSize < need {
		t.Errorf("ballast size %d, less than what an open needs, %d", sp.BallastSize, need)
	}
	if usage, err := s.DiskUsage(); err != nil || usage >= sp.BallastSize {
		t.Errorf("DiskUsage = %d, %v: counts the ballast", usage, err)
	}
	// Less free than any open needs (openNeed is at least the headroom).
	size, short := sp.BallastSize, headroom(s.opts)-1
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The disk fills up while the relay is stopped: what is free is just short of what an
	// open needs, plus what the ballast frees when it is deleted.
	var extra atomic.Int64 // space given back by another process
	disk := func(string) (int64, error) {
		free := short + extra.Load()
		if _, err := os.Stat(ballastPath); err != nil {
			free += size
		}
		return free, nil
	}
	s, err = Open(testOptions(dir, func(o *Options) { o.freeSpace = disk }), testLogger(t))
	if err != nil {
		t.Fatalf("Open on a full disk with a ballast: %v", err)
	}
	defer func() { _ = s.Close() }()
	if _, err := os.Stat(ballastPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ballast still there after an open on a full disk: %v", err)
	}
	sp = s.Space()
	if !sp.Full() || !strings.HasPrefix(sp.Reason(), "disk full: ") {
		t.Fatalf("Space after an open on a full disk: %+v, reason %q", sp, sp.Reason())
	}
	if _, err := s.StatFile(FileKey{"t", "s", "f"}); err != nil {
		t.Errorf("read on a full disk: %v", err)
	}
	if err := s.AdmitChallenge(Challenge{ID: "c", NodeID: "n", Expires: time.Now().Add(time.Hour)}, nil); !errors.Is(err, ErrNoSpace) {
		t.Errorf("write on a full disk: %v, want ErrNoSpace", err)
	}
	if s.refresh(); s.Space().Ballast != 0 {
		t.Error("ballast rebuilt on a full disk")
	}

	// Space comes back: the reserve alone is not enough, the ballast must be rebuilt first.
	extra.Store(sp.Reserve - short - size - 1)
	if sp := s.refresh(); !sp.Full() || sp.Ballast != 0 {
		t.Fatalf("room for the reserve only: %+v; want writes refused until the ballast is back", sp)
	}
	extra.Store(sp.Reserve + 2*size)
	if sp := s.refresh(); sp.Full() || sp.Ballast != sp.BallastSize {
		t.Fatalf("room for the reserve and the ballast: %+v; want the ballast rebuilt and writes accepted", sp)
	}
	if _, err := os.Stat(ballastPath); err != nil {
		t.Fatalf("ballast file after space came back: %v", err)
	}
	if err := s.AdmitChallenge(Challenge{ID: "c", NodeID: "n", Expires: time.Now().Add(time.Hour)}, nil); err != nil {
		t.Errorf("write after space came back: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// CheckOpen counts the ballast as room, and deletes nothing.
	if _, _, err := CheckOpen(testOptions(dir, func(o *Options) { o.freeSpace = func(string) (int64, error) { return short, nil } })); err != nil {
		t.Errorf("CheckOpen with the ballast in place: %v", err)
	}
	if _, err := os.Stat(ballastPath); err != nil {
		t.Errorf("ballast after CheckOpen: %v", err)
	}

	// Neither room nor ballast: the open fails and the engine writes nothing.
	empty := t.TempDir()
	tiny := testOptions(empty, func(o *Options) { o.freeSpace = func(string) (int64, error) { return 1 << 20, nil } })
	if free, need, err := CheckOpen(tiny); !errors.Is(err, ErrNoSpace) || free != 1<<20 || need <= free {
		t.Errorf("CheckOpen with 1 MiB free and no ballast: %d free, %d needed, %v; want ErrNoSpace", free, need, err)
	}
	_, err = Open(tiny, testLogger(t))
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "disk full: ") {
		t.Fatalf("Open with 1 MiB free and no ballast: %v, want ErrNoSpace saying the disk is full", err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("the refused open left files: %v", entries)
	}
}

// TestSpaceUnknown: where free space cannot be measured, nothing is refused and there is no
// ballast.
func TestSpaceUnknown(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(testOptions(dir, func(o *Options) { o.freeSpace = func(string) (int64, error) { return -1, nil } }), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if sp := s.Space(); sp.Known() || sp.Full() || sp.Ballast != 0 || sp.BallastSize != 0 {
		t.Errorf("Space with free space unknown: %+v", sp)
	}
	putFile(t, s, FileKey{"t", "s", "f"}, []byte("content"), time.Now().Add(time.Hour))
	if _, err := os.Stat(filepath.Join(dir, BallastFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a ballast without a measure of free space: %v", err)
	}
}

// TestOpenCountsLiveTables: before an open, the tables a crash left outside the MANIFEST
// (the output of an interrupted compaction, which the open deletes) need no room.
func TestOpenCountsLiveTables(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, func(o *Options) { o.MemTableSize = 1 << 20 })
	for i := range 2000 {
		if err := s.Blacklist(fmt.Sprintf("token-%05d-%s", i, strings.Repeat("x", 200)), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	live := liveTables(dir)
	if len(live) == 0 {
		t.Fatal("no table listed by the MANIFEST after 400 KiB of records and a close")
	}
	orphan := filepath.Join(dir, "999999.sst")
	if err := os.WriteFile(orphan, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	var all, kept spaceGuard
	all.o, kept.o = testOptions(dir), testOptions(dir)
	all.measureLSM(nil)
	kept.measureLSM(live)
	if d := all.tables() - kept.tables(); d < 4<<20 {
		t.Errorf("the orphan table counted: all tables %d, live ones %d", all.tables(), kept.tables())
	}
	if liveTables(t.TempDir()) != nil {
		t.Error("tables listed where there is no MANIFEST")
	}
}
