// Package connlimit bounds how many connections a listener has open at once. At the bound it
// stops accepting: new connections wait in the kernel's accept queue, untouched and costing
// the process nothing, until an open one closes. Nothing is refused or reset.
package connlimit

import (
	"net"
	"sync"
	"sync/atomic"
)

// Listener is a net.Listener that has at most Max connections open at once.
type Listener struct {
	net.Listener
	slots chan struct{}
	open  atomic.Int64

	closeOnce sync.Once
	done      chan struct{}
}

// New bounds ln to n open connections (n < 1 is taken as 1).
func New(ln net.Listener, n int) *Listener {
	return &Listener{Listener: ln, slots: make(chan struct{}, max(n, 1)), done: make(chan struct{})}
}

// Max is the bound.
func (l *Listener) Max() int { return cap(l.slots) }

// Open returns the connections open now.
func (l *Listener) Open() int64 { return l.open.Load() }

// Accept waits for a free slot, then for a connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
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
	l.open.Add(-1)
	<-l.slots
}

// conn gives its slot back when it is closed (once, however often Close is called).
type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.release)
	return err
}
