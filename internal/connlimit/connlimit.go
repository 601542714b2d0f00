// Package connlimit bounds how many connections a listener has open at once. At the bound it
// stops accepting: new connections wait in the kernel's accept queue, untouched and costing
// the process nothing, until an open one closes. Nothing is refused or reset. Every open
// connection costs memory whatever it carries, so refusing requests or streams alone does
// not bound it; the relay API and the edge listener both use it, with a bound from the
// memory budget.
//
// Idle connections should not starve the waiting ones: while the listener is full, it calls
// its reclaim function (SetReclaim) every ReclaimInterval, which closes what is idle (an HTTP
// server's keep-alive connections between requests), as nginx does when it runs out of
// connections.
package connlimit

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Listener is a net.Listener that has at most Max connections open at once.
type Listener struct {
	net.Listener
	slots chan struct{} // one token per open connection; nil: no bound
	open  atomic.Int64

	reclaim atomic.Pointer[func()]

	closeOnce sync.Once
	done      chan struct{}
}

// ReclaimInterval is how often a full listener calls its reclaim function.
const ReclaimInterval = 100 * time.Millisecond

// SetReclaim sets the function a full listener calls, every ReclaimInterval while it stays
// full, to close connections that can go (idle ones).
func (l *Listener) SetReclaim(fn func()) { l.reclaim.Store(&fn) }

// New bounds ln to n open connections; n <= 0 means no bound (they are still counted).
func New(ln net.Listener, n int) *Listener {
	l := &Listener{Listener: ln, done: make(chan struct{})}
	if n > 0 {
		l.slots = make(chan struct{}, n)
	}
	return l
}

// Open returns the connections accepted and not yet closed.
func (l *Listener) Open() int64 { return l.open.Load() }

// Accept waits for a free slot, then for a connection. The connection gives its slot back
// when it is closed (once, however often Close is called).
func (l *Listener) Accept() (net.Conn, error) {
	if err := l.acquire(); err != nil {
		return nil, err
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	l.open.Add(1)
	return &conn{Conn: c, l: l}, nil
}

// acquire takes a slot, reclaiming idle connections while there is none.
func (l *Listener) acquire() error {
	if l.slots == nil {
		return nil
	}
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-l.done:
		return net.ErrClosed
	default:
	}
	tick := time.NewTicker(ReclaimInterval)
	defer tick.Stop()
	for {
		if fn := l.reclaim.Load(); fn != nil {
			(*fn)()
		}
		select {
		case l.slots <- struct{}{}:
			return nil
		case <-l.done:
			return net.ErrClosed
		case <-tick.C:
		}
	}
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
