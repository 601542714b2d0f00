//go:build unix

package boxfiles_test

import "syscall"

// mkfifo makes a named pipe at path: opening it to serve it would block.
func mkfifo(path string) error { return syscall.Mkfifo(path, 0o644) }
