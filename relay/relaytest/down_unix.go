//go:build unix

package relaytest

import (
	"net"
	"strconv"
	"syscall"
	"testing"
)

// DownAddr returns a loopback address where every connection is refused for the whole
// test: a next hop that is down. Unlike a FreeAddr, nobody can start listening there
// meanwhile (another test's relay would answer in its place): the port stays bound to a
// socket that never listens, closed when the test ends.
func DownAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("down address: socket: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("down address: bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("down address: getsockname: %v", err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		t.Fatalf("down address: unexpected socket address %T", sa)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(in4.Port))
}
