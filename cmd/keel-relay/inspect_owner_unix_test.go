//go:build unix

package main

import (
	"io/fs"
	"syscall"
)

// fileOwner returns the uid and gid of a file.
func fileOwner(info fs.FileInfo) (uid, gid int) {
	st := info.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}
