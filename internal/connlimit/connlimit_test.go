package connlimit

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestBound checks on a real loopback listener that the connection beyond the bound is not
// accepted until an open one closes, and that it is then served, not refused.
func TestBound(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", raw.Addr().String()) // the kernel completes the handshake
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, second := <-accepted, <-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted with 2 open and a bound of 2")
	case <-time.After(100 * time.Millisecond):
	}
	if got := l.Open(); got != 2 {
		t.Errorf("Open = %d, want 2", got)
	}
	_ = first.Close()
	_ = first.Close() // twice: the slot is given back once
	select {
	case third := <-accepted:
		_ = third.Close()
	case <-time.After(2 * time.Second):
		t.Fatal("the waiting connection was not accepted after one closed")
	}
	_ = second.Close()
	deadline := time.Now().Add(2 * time.Second)
	for l.Open() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := l.Open(); got != 0 {
		t.Errorf("Open = %d after every connection closed, want 0", got)
	}
}

// TestNoBound: n <= 0 accepts every connection and still counts them; the accepted
// connection keeps the TCP connection's raw access (socket options, readiness reads).
func TestNoBound(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, 0)
	defer l.Close()
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		a, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, a)
	}
	if l.Open() != 3 {
		t.Errorf("Open %d, want 3", l.Open())
	}
	sc, ok := held[0].(syscall.Conn)
	if !ok {
		t.Fatalf("%T is not a syscall.Conn", held[0])
	}
	if _, err := sc.SyscallConn(); err != nil {
		t.Errorf("SyscallConn: %v", err)
	}
	for _, c := range held {
		_ = c.Close()
	}
	if l.Open() != 0 {
		t.Errorf("Open %d after closing all, want 0", l.Open())
	}
}

// TestCloseWhileFull checks that Close wakes an Accept waiting for a slot.
func TestCloseWhileFull(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, 1)
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	held, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	errc := make(chan error, 1)
	go func() { _, err := l.Accept(); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	_ = l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Accept still waiting after Close")
	}
}

// TestReclaim: a full listener calls its reclaim function until a slot frees; a connection
// it closes gives its slot to the waiting one.
func TestReclaim(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, 1)
	defer l.Close()
	c1, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	held, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	calls := make(chan struct{}, 100)
	l.SetReclaim(func() {
		calls <- struct{}{}
		if len(calls) == 2 { // the second call finds it idle
			_ = held.Close()
		}
	})
	c2, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			_ = c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting connection was not accepted after reclaim closed one")
	}
	if n := len(calls); n < 2 {
		t.Errorf("reclaim called %d times, want at least 2 (once at once, then every ReclaimInterval)", n)
	}
}

// TestIdleHTTP: a real http.Server's keep-alive connection is tracked while idle and closed by
// CloseIdle; one in the middle of a request is not.
func TestIdleHTTP(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	idle := &IdleHTTP{}
	srv := &http.Server{ConnState: idle.ConnState, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
	})}
	go func() { _ = srv.Serve(raw) }()
	defer srv.Close()
	defer close(release)

	keep, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	if _, err := keep.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(keep), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	busy, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, err := busy.Write([]byte("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // both states reached
	if n := idle.CloseIdle(); n != 1 {
		t.Errorf("CloseIdle closed %d connections, want 1 (the idle one)", n)
	}
	_ = keep.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := keep.Read(make([]byte, 1)); err == nil {
		t.Error("the idle connection is still open")
	}
}
