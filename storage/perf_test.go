package storage

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sigHeader returns a signature block the size of a real one (2048-bit key, sha256): hex
// digest and hash, base64 key.
func sigHeader(tb testing.TB) []byte {
	tb.Helper()
	rnd := make([]byte, 256+32+270)
	if _, err := rand.Read(rnd); err != nil {
		tb.Fatal(err)
	}
	return []byte("header=rudder-signature-v1\nalgorithm=sha256\ndigest=" + hex.EncodeToString(rnd[:256]) +
		"\nhash_value=" + hex.EncodeToString(rnd[256:288]) +
		"\nshort_pubkey=" + strings.Repeat("M", 360) +
		"\nhostname=node-0001.example.com\nkeydate=2024-01-01 00:00:00.000000+00:00\nkeyid=0123abcd\nexpires=1700000000")
}

// commitOne stores content as file k.
func commitOne(s *Store, k FileKey, header, content []byte, expires time.Time) error {
	u, err := s.NewUpload(int64(len(content)))
	if err != nil {
		return err
	}
	if _, err := u.Write(content); err != nil {
		u.Abort()
		return err
	}
	return s.CommitFile(u, FileMeta{Key: k, Header: header, Algorithm: "sha256",
		Hash: "00", Expires: expires, Stored: time.Now()})
}

// parallel runs fn(i) for i in [0, n) on workers goroutines and returns the first error.
func parallel(workers, n int, fn func(i int) error) error {
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return nil
}

// fsyncFiles writes n files of size bytes in dir from workers goroutines, each file
// fsynced before it is closed: what the file system allows.
func fsyncFiles(dir string, workers, n, size int) error {
	content := make([]byte, size)
	return parallel(workers, n, func(i int) error {
		f, err := os.Create(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			return err
		}
		if _, err := f.Write(content); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// BenchmarkCommit1KiBParallel commits 1 KiB files from 16 goroutines (distinct ids, a
// real-sized signature block, synced acknowledgements, default options) and, in the same
// run, 16 goroutines writing 1 KiB files + fsync each in a directory of the same file
// system. It reports both rates and their ratio (x-fsync).
func BenchmarkCommit1KiBParallel(b *testing.B) {
	const workers = 16
	root := b.TempDir()
	s, err := Open(DefaultOptions(filepath.Join(root, "store")), testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	header, content := sigHeader(b), make([]byte, 1<<10)
	expires := time.Now().Add(time.Hour)
	var round atomic.Int64
	var storeTime, fsyncTime time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := round.Add(1)
		start := time.Now()
		err := parallel(workers, 256, func(i int) error {
			return commitOne(s, FileKey{"t", "s", fmt.Sprintf("f%d-%d", r, i)}, header, content, expires)
		})
		storeTime += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		dir := filepath.Join(root, "fsync-"+strconv.FormatInt(r, 10))
		if err := os.Mkdir(dir, 0o750); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if err := fsyncFiles(dir, workers, 256, 1<<10); err != nil {
			b.Fatal(err)
		}
		fsyncTime += time.Since(start)
		b.StartTimer()
	}
	files := float64(256 * round.Load())
	b.ReportMetric(files/storeTime.Seconds(), "files/s")
	b.ReportMetric(files/fsyncTime.Seconds(), "fsync-files/s")
	b.ReportMetric(fsyncTime.Seconds()/storeTime.Seconds(), "x-fsync")
	b.ReportMetric(0, "ns/op")
}

// ioWritten returns the bytes this process made the kernel write to storage (dirtied pages,
// less those truncated before write-back): /proc/self/io write_bytes - cancelled_write_bytes.
func ioWritten(tb testing.TB) int64 {
	tb.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		tb.Skipf("no /proc/self/io: %v", err)
	}
	defer f.Close()
	var written, cancelled int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(val, 10, 64)
		switch name {
		case "write_bytes":
			written = n
		case "cancelled_write_bytes":
			cancelled = n
		}
	}
	return written - cancelled
}

// TestWear measures the disk bytes written per content byte for 1 KiB and 1 MiB files over
// a file's whole life: commit (16 writers, synced), expiry, orphan sweep, value-log GC and
// close. It counts what this process writes (/proc/self/io), so it runs alone, and only
// with KEEL_WEAR=1:
//
//	KEEL_WEAR=1 go test -count=1 -run '^TestWear$' -v ./storage/
func TestWear(t *testing.T) {
	if os.Getenv("KEEL_WEAR") == "" {
		t.Skip("a measurement: set KEEL_WEAR=1 and run it alone")
	}
	for _, tc := range []struct {
		name        string
		size, files int
	}{
		{"1KiB", 1 << 10, 20000},
		{"1MiB", 1 << 20, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			header, content := sigHeader(t), make([]byte, tc.size)
			if _, err := rand.Read(content); err != nil {
				t.Fatal(err)
			}
			expires := time.Now().Add(time.Hour)
			before := ioWritten(t)
			s, err := Open(DefaultOptions(dir), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			err = parallel(16, tc.files, func(i int) error {
				return commitOne(s, FileKey{"t", "s", "f" + strconv.Itoa(i)}, header, content, expires)
			})
			if err != nil {
				t.Fatal(err)
			}
			stored := ioWritten(t)
			if n, err := s.ExpireFiles(expires.Add(time.Second), 0); err != nil || n != tc.files {
				t.Fatalf("ExpireFiles = %d, %v; want %d", n, err, tc.files)
			}
			if _, err := s.SweepOrphans(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CollectGarbage(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			after := ioWritten(t)
			total := float64(tc.size * tc.files)
			t.Logf("%s × %d (header %d B): stored %.2f, life %.2f disk bytes written per content byte",
				tc.name, tc.files, len(header), float64(stored-before)/total, float64(after-before)/total)
		})
	}
}
