package server

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// capListener is a net.Listener that holds at most max connections open: at the cap it does
// not Accept, so that new connections wait in the kernel's accept queue (and their clients
// time out and retry) until one closes. Every connection costs memory whether it holds a
// stream or not (membudget.ConnCost); refusing streams alone does not bound it.
type capListener struct {
	net.Listener
	slots chan struct{} // one token per open connection; nil: no cap
	open  atomic.Int64
	done  chan struct{}
	once  sync.Once
	// userTimeout is set as TCP_USER_TIMEOUT on accepted TCP connections (gRPC's keepalive
	// Timeout, which gRPC sets only on the connections it sees as *net.TCPConn).
	userTimeout time.Duration
}

// newCapListener wraps ln; max <= 0 means no cap (the connections are still counted).
func newCapListener(ln net.Listener, max int, userTimeout time.Duration) *capListener {
	l := &capListener{Listener: ln, done: make(chan struct{}), userTimeout: userTimeout}
	if max > 0 {
		l.slots = make(chan struct{}, max)
	}
	return l
}

// Accept waits for a free slot, then for a connection.
func (l *capListener) Accept() (net.Conn, error) {
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
	setUserTimeout(c, l.userTimeout)
	l.open.Add(1)
	return wrapConn(&capConn{Conn: c, l: l}), nil
}

// Close closes the listener and ends the Accept waiting for a slot.
func (l *capListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Open returns the number of connections accepted and not yet closed.
func (l *capListener) Open() int64 {
	if l == nil {
		return 0
	}
	return l.open.Load()
}

func (l *capListener) release() {
	if l.slots != nil {
		<-l.slots
	}
}

// capConn gives its slot back when closed (once).
type capConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		c.l.release()
	})
	return err
}
