// Package secretfile reads and writes the relay's small secret files (the edge signing key,
// the admin token): mode 0600, written under a temporary name then linked or renamed into
// place (package fsutil) so that no reader sees half a file, given to the owner of their directory when root
// writes them, and refused on read when group or others may read them (Unix).
package secretfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/keel-relay/keel/internal/fsutil"
)

// Read returns the content of the secret file at path, at most max bytes. An error wraps
// fs.ErrNotExist when the file does not exist.
func Read(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if runtime.GOOS != "windows" {
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%s is accessible by group or others (mode %v); chmod 600 it", path, fi.Mode().Perm())
		}
	}
	return fsutil.ReadAllMax(f, path, int64(max))
}

// Create writes data to path unless a file is already there; it reports whether it wrote
// it. Of two processes creating the same file at once exactly one wins, and the other sees
// created false and reads the winner's file. The directory is created (0750) if needed.
func Create(path string, data []byte) (created bool, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return false, err
	}
	tmp, err := fsutil.WriteTemp(path, 0o600, owned(path, data))
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, fsutil.SyncDir(filepath.Dir(path))
}

// Replace writes data to path, atomically replacing what is there. The directory is created
// (0750) if needed.
func Replace(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	return fsutil.WriteAtomic(path, 0o600, owned(path, data))
}

// owned returns the writer of a secret file's content: data, then the file is given to
// the owner of path's directory (matchOwner).
func owned(path string, data []byte) func(*os.File) error {
	return func(f *os.File) error {
		if _, err := f.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := matchOwner(f.Name(), filepath.Dir(path)); err != nil {
			return fmt.Errorf("write %s: owner: %w", path, err)
		}
		return nil
	}
}
