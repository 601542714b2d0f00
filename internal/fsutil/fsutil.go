// Package fsutil writes files so that a crash never leaves half of one under its final
// name: the content goes to a temporary file beside the destination, is synced, and is
// renamed into place; then the directory is synced so the rename itself is durable.
// RenameSync and RemoveSync make a rename or a removal durable the same way.
package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteTemp creates a temporary file beside path (named ".<base>.tmp-*"), lets write fill
// it, sets its permission bits to perm, syncs and closes it, and returns its name. write
// must not close the file. On any failure the temporary file is removed. The caller renames
// or links the file into place (WriteAtomic does).
func WriteTemp(path string, perm fs.FileMode, write func(f *os.File) error) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: temporary file: %w", path, err)
	}
	tmp := f.Name()
	if err := fill(f, path, perm, write); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// WriteAtomic replaces path with what write produces, with permission bits perm: readers
// see the old content or the new one, never a part, even across a crash. An error from
// write is returned as it is, and path is left as it was.
func WriteAtomic(path string, perm fs.FileMode, write func(f *os.File) error) error {
	tmp, err := WriteTemp(path, perm, write)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// WriteFileAtomic replaces path with data, with permission bits perm, as WriteAtomic does.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	return WriteAtomic(path, perm, func(f *os.File) error {
		if _, err := f.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	})
}

// RenameSync renames from to to and syncs to's directory.
func RenameSync(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(to))
}

// RemoveSync removes path if it exists and syncs its directory; a missing file is not an
// error.
func RemoveSync(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return SyncDir(filepath.Dir(path))
}
