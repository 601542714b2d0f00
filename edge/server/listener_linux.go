package server

import (
	"io"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/mem"
)

// setUserTimeout sets TCP_USER_TIMEOUT on a TCP connection, as gRPC does for the connections
// it accepts itself (it cannot see through the listener's wrapper): unacknowledged data for
// longer than d closes the connection.
func setUserTimeout(c net.Conn, d time.Duration) {
	sc, ok := c.(syscall.Conn)
	if !ok || d <= 0 {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d/time.Millisecond))
	})
}

// wrapConn gives a TCP connection gRPC's ready-reader method (ReadOnReady), which gRPC only
// finds by itself on a *net.TCPConn: with it, an idle connection holds no read buffer (one
// is taken from gRPC's pool when data is there to read); without it, gRPC keeps a buffer of
// ReadBufferSize per connection for its whole life.
func wrapConn(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	r := &capRawConn{Conn: c, raw: raw}
	r.doRead = r.read
	return r
}

// capRawConn is an accepted connection that reads only once the socket is readable, into a
// buffer of the pool gRPC passes. One goroutine reads at a time (gRPC's reader).
type capRawConn struct {
	net.Conn
	raw    syscall.RawConn
	doRead func(fd uintptr) bool // r.read, kept to avoid an allocation per read

	// The read in progress.
	size int
	pool mem.BufferPool
	buf  *[]byte
	n    int
	err  error
}

// read is called by raw.Read when the socket may be readable; it reports whether it is done.
func (r *capRawConn) read(fd uintptr) bool {
	r.buf = r.pool.Get(r.size)
	// syscall, not unix: the net package's reads and writes use syscall, and mixing the two
	// confuses the race detector (as gRPC notes).
	r.n, r.err = syscall.Read(int(fd), *r.buf)
	if r.err != nil {
		r.pool.Put(r.buf)
		r.buf = nil
	}
	return r.err != syscall.EAGAIN && r.err != syscall.EWOULDBLOCK
}

// ReadOnReady waits until the connection is readable, then reads up to size bytes into a
// buffer from pool and returns it (to be put back by the caller), as gRPC's
// readyreader.Reader.
func (r *capRawConn) ReadOnReady(size int, pool mem.BufferPool) (*[]byte, int, error) {
	r.size, r.pool = size, pool
	err := r.raw.Read(r.doRead)
	buf, n, rerr := r.buf, r.n, r.err
	r.pool, r.buf, r.n, r.err = nil, nil, 0, nil
	switch {
	case err != nil:
		if buf != nil {
			pool.Put(buf)
		}
		return nil, 0, err
	case rerr != nil:
		return nil, 0, rerr
	case n == 0: // the peer closed: syscall.Read says so with 0 bytes, io.Reader with EOF
		pool.Put(buf)
		return nil, 0, io.EOF
	}
	return buf, n, nil
}
