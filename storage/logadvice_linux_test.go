package storage

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWrittenLogs(t *testing.T) {
	maps := []byte(`55d0c0000000-55d0c0021000 r--p 00000000 fd:00 123 /usr/bin/keel-relay
7f0000000000-7f0008000000 rw-s 00000000 fd:00 11 /data/00001.mem
7f0010000000-7f0018000000 rw-s 00000000 fd:00 12 /data/000002.vlog
7f0020000000-7f0028000000 rw-s 00000000 fd:00 13 /data/000010.vlog
7f0030000000-7f0038000000 rw-s 00000000 fd:00 14 /data/000009.vlog
7f0040000000-7f0048000000 rw-s 00000000 fd:00 15 /data/sub/00003.mem
7f0050000000-7f0058000000 rw-s 00000000 fd:00 16 /data/000011.sst
zzzz-7f0060000000 rw-s 00000000 fd:00 17 /data/00004.mem
7f0070000000-7f0060000000 rw-s 00000000 fd:00 18 /data/00005.mem
7f0080000000-7f0088000000 rw-s 00000000 fd:00 19
7f0090000000-7f0098000000 rw-s 00000000 fd:00 20 /data/abc.vlog
garbage
`)
	got := writtenLogs(parseLogMappings(maps, "/data"))
	want := []string{"/data/00001.mem", "/data/000010.vlog"}
	if len(got) != len(want) {
		t.Fatalf("got %d mappings %v, want %v", len(got), got, want)
	}
	for i, m := range got {
		if m.path != want[i] {
			t.Errorf("mapping %d = %s, want %s", i, m.path, want[i])
		}
		if m.end <= m.start {
			t.Errorf("mapping %d: end %x <= start %x", i, m.end, m.start)
		}
	}
}

// TestAdviceOnOpenStore runs the advice on a real store's mappings: it must find its logs.
func TestAdviceOnOpenStore(t *testing.T) {
	s := openTest(t, t.TempDir())
	abs, err := filepath.Abs(s.opts.Dir)
	if err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("no /proc/self/maps: %v", err)
	}
	logs := writtenLogs(parseLogMappings(maps, abs))
	if len(logs) < 2 {
		t.Fatalf("found %d written logs of the open store, want a memtable and a value log: %v", len(logs), logs)
	}
	s.advice.refresh(true) // must not fail or crash on live mappings
}

func FuzzParseLogMappings(f *testing.F) {
	f.Add([]byte("7f0000000000-7f0008000000 rw-s 00000000 fd:00 11 /data/00001.mem\n"), "/data")
	f.Add([]byte("1-0 rw-s 0 0:0 0 /d/1.vlog\n"), "/d")
	f.Fuzz(func(t *testing.T, maps []byte, dir string) {
		for _, m := range writtenLogs(parseLogMappings(maps, dir)) {
			if m.end <= m.start || filepath.Dir(m.path) != dir {
				t.Fatalf("bad mapping %+v for dir %q", m, dir)
			}
		}
	})
}

// TestBulkAdvice: an upload past bulkAfter counts as bulk (the value log gets read-ahead
// back) until it is committed or abandoned; smaller ones never do.
func TestBulkAdvice(t *testing.T) {
	s := openTest(t, t.TempDir())
	content := make([]byte, bulkAfter+3*s.Options().ChunkSize)
	for _, commit := range []bool{true, false} {
		u, err := s.NewUpload(int64(len(content)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Write(content[:bulkAfter/2]); err != nil {
			t.Fatal(err)
		}
		if n := s.advice.bulk.Load(); n != 0 {
			t.Fatalf("bulk = %d after %d bytes, want 0", n, bulkAfter/2)
		}
		if _, err := u.Write(content[bulkAfter/2:]); err != nil {
			t.Fatal(err)
		}
		if n := s.advice.bulk.Load(); n != 1 {
			t.Fatalf("bulk = %d after %d bytes, want 1", n, len(content))
		}
		if commit {
			if err := s.CommitFile(u, FileMeta{Key: FileKey{"t", "s", "big"}, Expires: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		} else {
			u.Abort()
		}
		if n := s.advice.bulk.Load(); n != 0 {
			t.Errorf("bulk = %d after the upload ended (commit %v), want 0", n, commit)
		}
	}
}
