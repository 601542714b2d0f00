//go:build !unix

package storage

import "os"

// diskBytes returns the file's size (no block count on this platform).
func diskBytes(info os.FileInfo) int64 { return info.Size() }

// freeSpace is unknown on this platform; writes fail on their own when the disk is full.
func freeSpace(string) (int64, error) { return -1, nil }
