//go:build !linux

package server

import (
	"net"
	"time"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not set (as in gRPC).
func setUserTimeout(net.Conn, time.Duration) {}

// wrapConn returns c: gRPC's ready reads are for Linux only.
func wrapConn(c net.Conn) net.Conn { return c }
