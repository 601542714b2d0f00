//go:build !linux

package main

import "os"

// maxRSSKiB is 0 where the peak resident size is not read (only Linux reports it in KiB).
func maxRSSKiB(*os.ProcessState) int64 { return 0 }
