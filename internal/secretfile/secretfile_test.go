package secretfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestCreateReadReplace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secret")
	if _, err := Read(path, 64); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of a missing file: %v, want fs.ErrNotExist", err)
	}
	if created, err := Create(path, []byte("one")); err != nil || !created {
		t.Fatalf("Create: %v %v", created, err)
	}
	if created, err := Create(path, []byte("two")); err != nil || created {
		t.Fatalf("second Create: %v %v, want false and the file kept", created, err)
	}
	if b, err := Read(path, 64); err != nil || string(b) != "one" {
		t.Fatalf("Read: %q %v", b, err)
	}
	if err := Replace(path, []byte("three")); err != nil {
		t.Fatal(err)
	}
	if b, err := Read(path, 64); err != nil || string(b) != "three" {
		t.Fatalf("Read after Replace: %q %v", b, err)
	}
	if fi, err := os.Stat(path); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Fatalf("mode: %v %v, want 0600", fi, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("%d entries in the directory, want 1 (no temporary left)", len(entries))
	}
}

func TestReadRefusals(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", 65)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(big, 64); err == nil || !strings.Contains(err.Error(), "larger than 64 bytes") {
		t.Errorf("Read of an oversize file: %v", err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(open, 64); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("Read of a 0644 file: %v, want a permissions error", err)
	}
}

// TestCreateRace: of concurrent creators exactly one writes the file.
func TestCreateRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			created, err := Create(path, []byte{byte('a' + i)})
			if err != nil {
				t.Error(err)
			}
			if created {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d creators won, want 1", wins.Load())
	}
}
