package fsutil

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
)

// WriteAtomicIn replaces the file name inside root with what write produces, with permission
// bits perm, as WriteAtomic does: the content goes to a temporary file of root (named
// ".keel-<random>.tmp", created exclusively), is synced and renamed to name, and root is
// synced. name is resolved inside root: it cannot reach outside it (os.Root). It reports
// whether name existed before (replaced). On any failure the temporary file is removed and
// name is left as it was.
func WriteAtomicIn(root *os.Root, name string, perm fs.FileMode, write func(f *os.File) error) (replaced bool, err error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := ".keel-" + hex.EncodeToString(rnd[:]) + ".tmp"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return false, fmt.Errorf("write %s: temporary file: %w", name, err)
	}
	if err := fill(f, name, perm, write); err != nil {
		_ = root.Remove(tmp)
		return false, err
	}
	_, statErr := root.Lstat(name)
	replaced = statErr == nil
	if err := root.Rename(tmp, name); err != nil {
		_ = root.Remove(tmp)
		return false, fmt.Errorf("write %s: %w", name, err)
	}
	if err := syncRoot(root); err != nil {
		return replaced, fmt.Errorf("write %s: %w", name, err)
	}
	return replaced, nil
}

// fill lets write fill f, sets its permission bits to perm, syncs and closes it; path names
// it in errors. An error from write is returned as it is.
func fill(f *os.File, path string, perm fs.FileMode, write func(f *os.File) error) error {
	err := write(f)
	if err == nil {
		if cerr := f.Chmod(perm); cerr != nil {
			err = fmt.Errorf("write %s: %w", path, cerr)
		}
	}
	if err == nil {
		if serr := f.Sync(); serr != nil {
			err = fmt.Errorf("write %s: sync: %w", path, serr)
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", path, cerr)
	}
	return err
}
