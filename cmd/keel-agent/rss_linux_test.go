package main

import (
	"os"
	"syscall"
)

// maxRSSKiB is the peak resident size of an exited process (rusage ru_maxrss, KiB on Linux).
func maxRSSKiB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return int64(ru.Maxrss)
	}
	return 0
}
