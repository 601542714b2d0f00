//go:build unix

package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// fixOwnership gives the files of dataDir, after a restore run as root, to the owner of
// dataDir, or of its parent when root owns dataDir (the restore created it): the relay's
// user must be able to open what root wrote. Run as another user, it changes nothing.
func fixOwnership(dataDir string, out io.Writer) error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid, from, err := dataDirOwner(dataDir)
	if err != nil || uid == 0 {
		return err
	}
	changed := 0
	err = filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok || (int(st.Uid) == uid && int(st.Gid) == gid) {
			return nil
		}
		if err := os.Lchown(path, uid, gid); err != nil {
			return err
		}
		changed++
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore: give the restored files to uid %d, gid %d (the owner of %s): %w", uid, gid, from, err)
	}
	if changed > 0 {
		fmt.Fprintf(out, "gave %d restored file(s) to uid %d, gid %d (the owner of %s)\n", changed, uid, gid, from)
	}
	return nil
}

// dataDirOwner returns the owner of dataDir, or of its parent when root owns dataDir, and
// which of them it is.
func dataDirOwner(dataDir string) (uid, gid int, from string, err error) {
	for _, dir := range []string{dataDir, filepath.Dir(filepath.Clean(dataDir))} {
		info, err := os.Stat(dir)
		if err != nil {
			return 0, 0, "", fmt.Errorf("restore: owner of %s: %w", dir, err)
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return 0, 0, "", nil
		}
		if st.Uid != 0 {
			return int(st.Uid), int(st.Gid), dir, nil
		}
	}
	return 0, 0, "", nil
}
