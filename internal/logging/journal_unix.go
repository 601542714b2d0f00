//go:build !windows

package logging

import (
	"os"
	"syscall"
)

// fileID returns the device and inode of f.
func fileID(f *os.File) (dev, ino uint64, ok bool) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), true // Dev and Ino are not uint64 on every platform
}
