package storage

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestNoSpaceWhileWriting: an upload of unknown size (a chunked request) is checked against
// the free-space reserve chunk by chunk, and so is the single chunk its commit writes; the
// disk filling up during an upload of known size stops it too. Nothing becomes visible.
func TestNoSpaceWhileWriting(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	var free atomic.Int64
	free.Store(1 << 30)
	s.freeSpace = func(string) (int64, error) { return free.Load(), nil }
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
			free.Store(s.Options().MinFreeSpace) // the reserve, and not a byte more
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
