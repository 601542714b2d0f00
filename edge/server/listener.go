package server

import (
	"net"
	"time"

	"github.com/keel-relay/keel/internal/connlimit"
)

// capListener is the edge listener: at most max connections open (connlimit: at the cap it
// does not Accept, and new connections wait in the kernel's accept queue, their clients
// timing out and retrying, until one closes), each made as cheap for gRPC as a connection it
// accepted itself would be (TCP_USER_TIMEOUT, ready reads: see listener_linux.go).
type capListener struct {
	*connlimit.Listener
	// userTimeout is set as TCP_USER_TIMEOUT on accepted TCP connections (gRPC's keepalive
	// Timeout, which gRPC sets only on the connections it sees as *net.TCPConn).
	userTimeout time.Duration
}

// newCapListener wraps ln; max <= 0 means no cap (the connections are still counted).
func newCapListener(ln net.Listener, max int, userTimeout time.Duration) *capListener {
	return &capListener{Listener: connlimit.New(ln, max), userTimeout: userTimeout}
}

// Accept waits for a free place, then for a connection.
func (l *capListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	setUserTimeout(c, l.userTimeout)
	return wrapConn(c), nil
}

// Open returns the number of connections accepted and not yet closed.
func (l *capListener) Open() int64 {
	if l == nil {
		return 0
	}
	return l.Listener.Open()
}
