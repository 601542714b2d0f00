//go:build !unix

package fsutil

// SyncDir does nothing here: directories cannot be synced.
func SyncDir(string) error { return nil }
