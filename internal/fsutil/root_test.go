package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestWriteAtomicIn(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	write := func(s string) func(f *os.File) error {
		return func(f *os.File) error { _, err := f.WriteString(s); return err }
	}
	for i, want := range []bool{false, true} { // created, then replaced
		content := []string{"first", "second"}[i]
		replaced, err := WriteAtomicIn(root, "report.log.gz", 0o640, write(content))
		if err != nil || replaced != want {
			t.Fatalf("write %d: replaced %v, %v; want %v", i, replaced, err, want)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "report.log.gz")); string(b) != content {
			t.Fatalf("content %q, want %q", b, content)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "report.log.gz")); err != nil || (runtime.GOOS != "windows" && st.Mode().Perm() != 0o640) {
		t.Errorf("stat: %v, %v", st, err)
	}
	boom := errors.New("boom")
	if _, err := WriteAtomicIn(root, "report.log.gz", 0o640, func(f *os.File) error {
		_, _ = f.WriteString("half")
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the writer's error", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "report.log.gz")); string(b) != "second" {
		t.Errorf("a failed write changed the file: %q", b)
	}
	// Names that leave the root are refused, and nothing is left behind.
	for _, name := range []string{"../escape", "/etc/passwd-keel", "sub/../../escape"} {
		if _, err := WriteAtomicIn(root, name, 0o640, write("x")); err == nil {
			t.Errorf("%q: written outside the root", name)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape")); err == nil {
		t.Error("a file escaped the root")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("leftovers: %v", ents)
	}
}
