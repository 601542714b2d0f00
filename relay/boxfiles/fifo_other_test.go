//go:build !unix

package boxfiles_test

import "os"

// mkfifo stands for a named pipe with a directory where there are none.
func mkfifo(path string) error { return os.Mkdir(path, 0o755) }
