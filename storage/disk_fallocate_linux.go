package storage

import (
	"os"
	"syscall"
)

// fallocate gives f real blocks up to size bytes.
func fallocate(f *os.File, size int64) error {
	return syscall.Fallocate(int(f.Fd()), 0, 0, size)
}
