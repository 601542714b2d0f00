package storage

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gcOptions makes value-log files small (Badger's minimum, 1 MiB) so a few MiB of content
// spans several of them, with chunks big enough to go to the value log.
func gcOptions(o *Options) {
	o.ValueLogFileSize = 1 << 20
	o.ChunkSize = 64 << 10
	o.SyncWrites = false
}

// TestCollectGarbageReturnsSpace expires most of the content of a quiet store (its deletes
// never leave the memtable on their own) and checks CollectGarbage gives the space back while
// the file that is kept stays intact.
func TestCollectGarbageReturnsSpace(t *testing.T) {
	s := openTest(t, t.TempDir(), gcOptions)
	defer s.Close()
	now := time.Now()
	const files, size = 16, 512 << 10 // 8 MiB: about 8 value-log files
	for i := range files {
		putFile(t, s, FileKey{"t", "s", fmt.Sprintf("gone%02d", i)}, randomBytes(t, size), now.Add(-time.Minute))
	}
	kept := randomBytes(t, size)
	putFile(t, s, FileKey{"t", "s", "kept"}, kept, now.Add(time.Hour))
	stored := diskUsage(t, s)
	if n, err := s.ExpireFiles(now, 0); err != nil || n != files {
		t.Fatalf("ExpireFiles = %d, %v; want %d", n, err, files)
	}
	if _, err := s.SweepOrphans(context.Background()); err != nil {
		t.Fatal(err)
	}
	rewritten, err := s.CollectGarbage(context.Background())
	if err != nil {
		t.Fatalf("CollectGarbage: %v", err)
	}
	after := diskUsage(t, s)
	// All but the value-log file being written to (and the one holding the kept file's
	// chunks, rewritten or not) must go.
	if freed := stored - after; rewritten < files/2-2 || freed < int64(files*size)*3/4 {
		t.Errorf("CollectGarbage rewrote %d files and freed %d of %d bytes (%d on disk before, %d after)",
			rewritten, freed, files*size, stored, after)
	}
	if got := readFile(t, s, FileKey{"t", "s", "kept"}); !bytes.Equal(got, kept) {
		t.Error("the kept file changed after GC")
	}
	if empty, err := s.Empty(); err != nil || empty {
		t.Errorf("Empty = %v, %v after GC; want false (the kept file)", empty, err)
	}
	// Nothing left to do: a second run rewrites nothing and does not fail.
	if n, err := s.CollectGarbage(context.Background()); err != nil || n != 0 {
		t.Errorf("second CollectGarbage = %d, %v; want 0, nil", n, err)
	}
}

// TestCollectGarbageDuringWrites runs CollectGarbage over and over while files are written,
// replaced and deleted: a write never fails because a flush is under way.
func TestCollectGarbageDuringWrites(t *testing.T) {
	s := openTest(t, t.TempDir(), gcOptions)
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var writes atomic.Int64
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			content := bytes.Repeat([]byte{byte(w)}, 100<<10)
			for i := 0; ctx.Err() == nil; i++ {
				k := FileKey{"t", "s", fmt.Sprintf("w%d-%d", w, i%8)} // replaced every 8 writes
				u, err := s.NewUpload(int64(len(content)))
				if err == nil {
					if _, err = u.Write(content); err != nil {
						u.Abort()
					}
				}
				if err == nil {
					err = s.CommitFile(u, FileMeta{Key: k, Expires: time.Now().Add(time.Hour)})
				}
				if err == nil && i%3 == 0 {
					err = s.DeleteFile(k)
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d, file %d: %w", w, i, err)
					return
				}
				writes.Add(1)
			}
		})
	}
	deadline := time.Now().Add(3 * time.Second)
	runs := 0
	for ; time.Now().Before(deadline) || runs < 5; runs++ {
		if _, err := s.SweepOrphans(ctx); err != nil {
			t.Fatalf("SweepOrphans: %v", err)
		}
		if _, err := s.CollectGarbage(ctx); err != nil {
			t.Fatalf("CollectGarbage run %d: %v", runs, err)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if writes.Load() == 0 {
		t.Fatal("no write went through")
	}
	t.Logf("%d GC runs during %d writes", runs, writes.Load())
}

func diskUsage(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
