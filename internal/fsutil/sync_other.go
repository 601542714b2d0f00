//go:build !unix

package fsutil

import "os"

// SyncDir does nothing here: directories cannot be synced.
func SyncDir(string) error { return nil }

// syncRoot does nothing here: directories cannot be synced.
func syncRoot(*os.Root) error { return nil }
