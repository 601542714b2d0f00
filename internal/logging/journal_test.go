//go:build !windows

package logging

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestJournalGolden: under the journal, each record is one line that starts with its
// priority and has no time, in both formats, through WithAttrs and WithGroup too.
func TestJournalGolden(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			log, lv := newLogger("debug", format, &buf, true)
			log.Debug("cache sized", "entries", 128)
			log.Info("keel-relay started", "api", "127.0.0.1:3030")
			log.Warn("config change needs a restart to take effect", "key", "edge")
			log.Error("reload incomplete", "err", errors.New("node map: line 1\nline 2"))
			log.With("component", "forward").WithGroup("job").Info("forwarded", "id", "j1")
			log.Log(t.Context(), slog.LevelError+4, "above error")
			log.Log(t.Context(), slog.LevelDebug-4, "below debug")
			lv.Set(slog.LevelWarn)
			log.Info("not shown at warn")
			golden := filepath.Join("testdata", "journal-"+format+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if buf.String() != string(want) {
				t.Errorf("journal lines differ from %s:\n%s\nwant:\n%s", golden, buf.String(), want)
			}
		})
	}
}

// TestJournalConcurrent: records logged at once from many goroutines keep their own prefix
// (run it with -race).
func TestJournalConcurrent(t *testing.T) {
	var buf bytes.Buffer
	log, _ := newLogger("debug", "text", &buf, true)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			l := log.With("g", i)
			for range 100 {
				l.Warn("w")
				l.Error("e")
			}
		})
	}
	wg.Wait()
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if !strings.HasPrefix(line, "<4>level=WARN msg=w") && !strings.HasPrefix(line, "<3>level=ERROR msg=e") {
			t.Fatalf("mixed up record: %q", line)
		}
	}
}

// TestJournal checks the detection against real files: JOURNAL_STREAM must name the very
// file written to.
func TestJournal(t *testing.T) {
	dir := t.TempDir()
	open := func(name string) *os.File {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	f, other := open("stderr"), open("other")
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "JOURNAL_STREAM" {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name   string
		w      any
		stream string
		want   bool
	}{
		{"the file", f, id, true},
		{"another file", other, id, false},
		{"unset", f, "", false},
		{"not a file", &bytes.Buffer{}, id, false},
		{"nil file", (*os.File)(nil), id, false},
		{"other inode", f, fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), false},
		{"other device", f, fmt.Sprintf("%d:%d", st.Dev+1, st.Ino), false},
		{"no colon", f, fmt.Sprintf("%d", st.Ino), false},
		{"hex", f, fmt.Sprintf("%x:%x", st.Dev, st.Ino), false},
		{"spaces", f, " " + id, false},
		{"negative", f, "-1:-1", false},
		{"extra field", f, id + ":1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := tc.w.(interface{ Write([]byte) (int, error) })
			if got := Journal(w, env(tc.stream)); got != tc.want {
				t.Errorf("Journal = %v, want %v", got, tc.want)
			}
		})
	}

	// New, under that environment, writes journal lines to the file.
	t.Setenv("JOURNAL_STREAM", id)
	log, _ := New("info", "text", f)
	log.Warn("disk nearly full", "free", "1GiB")
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != "<4>level=WARN msg=\"disk nearly full\" free=1GiB\n" {
		t.Errorf("New under the journal wrote %q", got)
	}
}

func FuzzParseJournalStream(f *testing.F) {
	for _, s := range []string{"8:1234", "", ":", "1:", ":1", "a:b", "18446744073709551615:1", "18446744073709551616:1", "1:2:3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		dev, ino, ok := ParseJournalStream(s)
		if ok && (strings.Count(s, ":") != 1 || strings.Trim(s, "0123456789:") != "") {
			t.Fatalf("%q accepted as %d:%d", s, dev, ino)
		}
		if !ok && (dev != 0 || ino != 0) {
			t.Fatalf("%q refused but gave %d:%d", s, dev, ino)
		}
	})
}
