//go:build linux

package rlimit

import (
	"fmt"
	"syscall"
)

// RaiseNoFile raises the process's soft open-file limit to its hard one (the processes it
// starts inherit it) and checks that the limit fits need open files.
func RaiseNoFile(need int) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return fmt.Errorf("setrlimit: %w", err)
		}
	}
	if rl.Cur < uint64(max(need, 0)) {
		return fmt.Errorf("open-file limit %d is below the %d needed: raise ulimit -Hn", rl.Cur, need)
	}
	return nil
}
