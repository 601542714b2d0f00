package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// oddReader returns its content in reads of varying sizes, as a socket does.
type oddReader struct {
	b []byte
	i int
}

func (r *oddReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	r.i++
	n := min(len(p), len(r.b), 1+(r.i*7919)%9000)
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}

// TestUploadRoundTrip stores files of sizes around the chunk size, declared exactly, too
// small, too large or not at all, written with Write in pieces or with ReadFrom, and reads
// them back; every chunk is adopted (the sweep finds nothing).
func TestUploadRoundTrip(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	chunk := s.Options().ChunkSize
	sizes := []int{0, 1, 1000, chunk - 2, chunk - 1, chunk, chunk + 1, 2 * chunk, 3*chunk + 17, 20*chunk + 5}
	declared := []struct {
		name string
		of   func(n int) int64
	}{
		{"exact", func(n int) int64 { return int64(n) }},
		{"unknown", func(int) int64 { return -1 }},
		{"smaller", func(n int) int64 { return int64(n / 3) }},
		{"larger", func(n int) int64 { return int64(n + chunk/2) }},
	}
	writers := []struct {
		name  string
		write func(u *Upload, b []byte) error
	}{
		{"ReadFrom", func(u *Upload, b []byte) error { _, err := u.ReadFrom(&oddReader{b: b}); return err }},
		{"Write", func(u *Upload, b []byte) error {
			for len(b) > 0 {
				n := min(len(b), 1500)
				if _, err := u.Write(b[:n]); err != nil {
					return err
				}
				b = b[n:]
			}
			return nil
		}},
		{"io.Copy", func(u *Upload, b []byte) error { _, err := io.Copy(u, bytes.NewReader(b)); return err }},
	}
	expires := time.Now().Add(time.Hour)
	for _, size := range sizes {
		content := randomBytes(t, size)
		for _, d := range declared {
			for _, w := range writers {
				k := FileKey{"t", "s", strings.Join([]string{w.name, d.name, strconv.Itoa(size)}, "-")}
				u, err := s.NewUpload(d.of(size))
				if err != nil {
					t.Fatal(err)
				}
				if err := w.write(u, content); err != nil {
					t.Fatalf("%d bytes, %s size, %s: %v", size, d.name, w.name, err)
				}
				if u.Size() != int64(size) {
					t.Errorf("%d bytes, %s size, %s: Size = %d", size, d.name, w.name, u.Size())
				}
				if err := s.CommitFile(u, FileMeta{Key: k, Expires: expires}); err != nil {
					t.Fatalf("%d bytes, %s size, %s: commit: %v", size, d.name, w.name, err)
				}
				if got := readFile(t, s, k); !bytes.Equal(got, content) {
					t.Errorf("%d bytes, %s size, %s: read back %d bytes, not the content", size, d.name, w.name, len(got))
				}
			}
		}
	}
	if n, err := s.SweepOrphans(context.Background()); err != nil || n != 0 {
		t.Errorf("SweepOrphans after committed uploads = %d, %v; want 0", n, err)
	}
}

// writingChunk reports whether the caller runs in an upload's background chunk write.
func writingChunk() bool {
	pc := make([]uintptr, 64)
	frames := runtime.CallersFrames(pc[:runtime.Callers(2, pc)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, "storage.(*Upload).writeChunk") {
			return true
		}
		if !more {
			return false
		}
	}
}

// TestUploadWriteErrorMidUpload fills the disk when the nth chunk is written: the background
// write's error comes back at the next Write or ReadFrom, or at the commit, every later write
// fails with it, nothing is committed, and no chunk or orphan marker is left.
func TestUploadWriteErrorMidUpload(t *testing.T) {
	chunk := 4 << 10
	for _, fail := range []int64{0, 1, 3} {
		for _, mode := range []string{"Write", "ReadFrom"} {
			t.Run(mode+"/chunk "+strconv.FormatInt(fail, 10), func(t *testing.T) {
				s := openTest(t, t.TempDir())
				defer s.Close()
				var chunks atomic.Int64
				s.setFreeSpace(func(string) (int64, error) {
					if writingChunk() && chunks.Add(1) > fail {
						return s.guard.need() - 1, nil
					}
					return 1 << 40, nil
				})
				content := randomBytes(t, 10*chunk)
				u, err := s.NewUpload(int64(len(content)))
				if err != nil {
					t.Fatal(err)
				}
				if mode == "Write" {
					_, err = u.Write(content)
				} else {
					_, err = u.ReadFrom(&oddReader{b: content})
				}
				if err == nil {
					t.Fatal("the upload took all its content on a full disk")
				}
				if !errors.Is(err, ErrNoSpace) {
					t.Fatalf("error %v, want ErrNoSpace", err)
				}
				if _, again := u.Write([]byte("x")); !errors.Is(again, ErrNoSpace) {
					t.Errorf("write after the failure: %v, want the same error", again)
				}
				if err := s.CommitFile(u, FileMeta{Key: FileKey{"t", "s", "f"}, Expires: time.Now().Add(time.Hour)}); !errors.Is(err, ErrNoSpace) {
					t.Errorf("commit after the failure: %v, want ErrNoSpace", err)
				}
				if n := s.FileCount(); n != 0 {
					t.Errorf("files = %d, want 0", n)
				}
				if got := countChunks(t, s); got != 0 {
					t.Errorf("chunks left = %d, want 0", got)
				}
				if n, _ := s.countPrefix([]byte(prefixOrphan)); n != 0 {
					t.Errorf("orphan markers left = %d, want 0", n)
				}
			})
		}
	}
}

// TestAbortWaitsForChunkInFlight holds an upload's background chunk write while Abort is
// called: Abort returns only once the write is done, then deletes every chunk; when it
// cannot delete them (the disk below the floor even for deletes), the sweeper finds them.
func TestAbortWaitsForChunkInFlight(t *testing.T) {
	for _, deleteFails := range []bool{false, true} {
		name := "deleted"
		if deleteFails {
			name = "left for the sweeper"
		}
		t.Run(name, func(t *testing.T) {
			s := openTest(t, t.TempDir())
			defer s.Close()
			chunk := s.Options().ChunkSize
			var hold atomic.Bool
			var full atomic.Bool
			entered, release := make(chan struct{}), make(chan struct{})
			s.setFreeSpace(func(string) (int64, error) {
				if writingChunk() {
					if hold.CompareAndSwap(true, false) {
						close(entered)
						<-release
					}
					return 1 << 40, nil
				}
				if full.Load() {
					return 0, nil
				}
				return 1 << 40, nil
			})
			u, err := s.NewUpload(-1)
			if err != nil {
				t.Fatal(err)
			}
			content := randomBytes(t, 3*chunk+chunk/2)
			if _, err := u.Write(content[:3*chunk]); err != nil { // chunks 0 and 1 written, 2 full
				t.Fatal(err)
			}
			if err := u.wait(); err != nil { // chunk 1 written
				t.Fatal(err)
			}
			hold.Store(true)
			if _, err := u.Write(content[3*chunk:]); err != nil { // hands chunk 2 over
				t.Fatal(err)
			}
			select {
			case <-entered:
			case <-time.After(5 * time.Second):
				t.Fatal("the chunk write did not start")
			}
			full.Store(deleteFails)
			aborted := make(chan struct{})
			go func() { u.Abort(); close(aborted) }()
			select {
			case <-aborted:
				t.Fatal("Abort returned while a chunk write was in flight")
			case <-time.After(100 * time.Millisecond):
			}
			close(release)
			select {
			case <-aborted:
			case <-time.After(5 * time.Second):
				t.Fatal("Abort did not return once the write was done")
			}
			want := 0
			if deleteFails {
				want = 3
			}
			if got := countChunks(t, s); got != want {
				t.Errorf("chunks after abort = %d, want %d", got, want)
			}
			full.Store(false)
			n, err := s.SweepOrphans(context.Background())
			if err != nil || n != want/3 {
				t.Errorf("SweepOrphans = %d, %v; want %d", n, err, want/3)
			}
			if got := countChunks(t, s); got != 0 {
				t.Errorf("chunks after the sweep = %d, want 0", got)
			}
			if n, _ := s.countPrefix([]byte(prefixOrphan)); n != 0 {
				t.Errorf("orphan markers after the sweep = %d, want 0", n)
			}
		})
	}
}

// TestUploadMemoryFollowsSize checks what an upload buffers: a small file no more than its
// size (and a byte), a large one at most two chunks, lent back to the store at the end.
func TestUploadMemoryFollowsSize(t *testing.T) {
	s := openTest(t, t.TempDir(), func(o *Options) { o.ChunkSize = 64 << 10 })
	defer s.Close()
	chunk := s.Options().ChunkSize
	u, err := s.NewUpload(1000)
	if err != nil {
		t.Fatal(err)
	}
	if c := cap(u.buf); c != 1001 {
		t.Errorf("1000-byte upload buffers %d bytes, want 1001", c)
	}
	if _, err := u.ReadFrom(&oddReader{b: randomBytes(t, 1000)}); err != nil {
		t.Fatal(err)
	}
	if c := cap(u.buf); c != 1001 {
		t.Errorf("1000-byte upload grew its buffer to %d bytes reading its content", c)
	}
	u.Abort()

	u, err = s.NewUpload(-1)
	if err != nil {
		t.Fatal(err)
	}
	if c := cap(u.buf); c != firstBufferUnknown {
		t.Errorf("upload of unknown size starts with %d bytes, want %d", c, firstBufferUnknown)
	}
	if _, err := u.ReadFrom(&oddReader{b: randomBytes(t, 10*chunk)}); err != nil {
		t.Fatal(err)
	}
	if held := cap(u.buf) + cap(u.spare) + cap(u.wbuf); held > 2*chunk {
		t.Errorf("large upload holds %d bytes of buffers, want at most 2 chunks (%d)", held, 2*chunk)
	}
	if err := s.CommitFile(u, FileMeta{Key: FileKey{"t", "s", "big"}, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if u.buf != nil || u.spare != nil || u.wbuf != nil {
		t.Error("a committed upload still holds buffers")
	}
}
