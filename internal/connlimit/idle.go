package connlimit

import (
	"net"
	"net/http"
	"sync"
)

// IdleHTTP tracks the idle connections of an http.Server (install ConnState as its hook) so
// that a full Listener can close them (CloseIdle as its reclaim function). A connection is
// idle between two requests of a keep-alive client; closing it then is what the server's
// IdleTimeout does anyway, only sooner.
type IdleHTTP struct {
	mu   sync.Mutex
	idle map[net.Conn]struct{}
}

// ConnState is the http.Server.ConnState hook.
func (t *IdleHTTP) ConnState(c net.Conn, state http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if state == http.StateIdle {
		if t.idle == nil {
			t.idle = make(map[net.Conn]struct{})
		}
		t.idle[c] = struct{}{}
		return
	}
	delete(t.idle, c)
}

// CloseIdle closes every connection idle now and returns how many.
func (t *IdleHTTP) CloseIdle() int {
	t.mu.Lock()
	conns := make([]net.Conn, 0, len(t.idle))
	for c := range t.idle {
		conns = append(conns, c)
	}
	clear(t.idle)
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}
