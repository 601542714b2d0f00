package storage

import (
	"bytes"
	"io"
	"strconv"
	"testing"
	"time"
)

// BenchmarkUpload measures storing a 64 MiB file (chunks, synced commit).
func BenchmarkUpload(b *testing.B) {
	s := openTest(b, b.TempDir(), func(o *Options) { o.ChunkSize = 256 << 10 })
	defer s.Close()
	content := make([]byte, 64<<20)
	b.SetBytes(int64(len(content)))
	for i := 0; b.Loop(); i++ {
		u, err := s.NewUpload(int64(len(content)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(u, bytes.NewReader(content)); err != nil {
			b.Fatal(err)
		}
		if err := s.CommitFile(u, FileMeta{Key: FileKey{"t", "s", "f"}, Expires: time.Now().Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSmallWrite measures an unsynced small record (a challenge, no bound on pending
// ones): the cost of a transaction, with the free-space check every growing write makes.
func BenchmarkSmallWrite(b *testing.B) {
	s := openTest(b, b.TempDir())
	defer s.Close()
	expires := time.Now().Add(time.Hour)
	for i := 0; b.Loop(); i++ {
		c := Challenge{ID: strconv.Itoa(i), NodeID: "n", Capabilities: make([]byte, 200), Expires: expires}
		if err := s.AdmitChallenge(c, nil); err != nil {
			b.Fatal(err)
		}
	}
}
