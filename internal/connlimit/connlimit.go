// Package connlimit bounds how many connections a listener has open at once. At the bound it
// stops accepting: new connections wait in the kernel's accept queue, untouched and costing
// the process nothing, until an open one closes. Nothing is refused or reset. Every open
// connection costs memory whatever it carries, so refusing requests or streams alone does
// not bound it; the relay API and the edge listener both use it, with a bound from the
// memory budget.
package connlimit

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// Listener is a net.Listener that has at most Max connections open at once.
type Listener struct {
	net.Listener
	slots chan struct{} // one token per open connection; nil: no bound
	open  atomic.Int64

	closeOnce sync.Once
	done      chan struct{}
}

// New bounds ln to n open connections; n <= 0 means no bound (they are still counted).
func New(ln net.Listener, n int) *Listener {
	l := &Listener{Listener: ln, done: make(chan struct{})}
	if n > 0 {
		l.slots = make(chan struct{}, n)
	}
	return l
}

// Max is the bound (0: none).
func (l *Listener) Max() int { return cap(l.slots) }

// Open returns the connections accepted and not yet closed.
func (l *Listener) Open() int64 { return l.open.Load() }

// Accept waits for a free slot, then for a connection. The connection gives its slot back
// when it is closed (once, however often Close is called).
func (l *Listener) Accept() (net.Conn, error) {
	if l.slots != nil {
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	l.open.Add(1)
	return &conn{Conn: c, l: l}, nil
}

// Close closes the listener; an Accept waiting for a slot returns net.ErrClosed.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *Listener) release() {
	if l.slots != nil {
		<-l.slots
	}
}

// errNoSyscallConn is SyscallConn's error for a connection without a file descriptor.
var errNoSyscallConn = errors.New("connlimit: the connection has no file descriptor")

// conn is an accepted connection that gives its slot back when it is closed.
type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		c.l.release()
	})
	return err
}

// SyscallConn gives the raw connection of a TCP (or any syscall.Conn) connection, so that
// socket options and readiness reads still work through the wrapper.
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errNoSyscallConn
}
