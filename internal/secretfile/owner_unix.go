//go:build unix

package secretfile

import (
	"os"
	"syscall"
)

// matchOwner gives a secret file created by root (an operator running the CLI before the
// relay's first start) to the owner of its directory, so the relay's service user can read it.
func matchOwner(file, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	return os.Chown(file, int(st.Uid), int(st.Gid))
}
