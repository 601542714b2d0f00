package server

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
)

// dialEdge opens a gRPC connection of its own to the harness's server.
func dialEdge(t *testing.T, h *harness) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+h.srv.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// healthCheck runs a health check on conn within d; wait makes it wait for the connection.
func healthCheck(conn *grpc.ClientConn, d time.Duration, wait bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(wait))
	return err
}

// TestMaxConnections: at MaxConnections the next connection is not accepted (its call
// waits) until an open one closes; then it is served.
func TestMaxConnections(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxConnections = 2 })
	c1, c2, c3 := dialEdge(t, h), dialEdge(t, h), dialEdge(t, h)
	for _, c := range []*grpc.ClientConn{c1, c2} {
		if err := healthCheck(c, 10*time.Second, true); err != nil {
			t.Fatalf("check under the cap: %v", err)
		}
	}
	if err := healthCheck(c3, time.Second, true); codeOf(err) != codes.DeadlineExceeded {
		t.Fatalf("third connection at the cap: %v, want DeadlineExceeded (not accepted)", err)
	}
	if n := h.srv.ln.Open(); n != 2 {
		t.Fatalf("open connections %d, want 2", n)
	}
	if want := "keel_edge_connections 2"; !strings.Contains(h.metrics(), want) {
		t.Errorf("metrics lack %q", want)
	}
	c1.Close()
	if err := healthCheck(c3, 10*time.Second, true); err != nil {
		t.Fatalf("third connection once one closed: %v", err)
	}
	waitFor(t, func() bool { return h.srv.ln.Open() == 2 })
}

// TestIdleConnectionClosed: a connection that holds no stream for MaxConnectionIdle is
// closed and gives its place back; one that holds a live stream is kept.
func TestIdleConnectionClosed(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxConnections = 1; o.MaxConnectionIdle = 300 * time.Millisecond })
	d := enrolled(t, h) // over the harness's connection, idle afterwards
	waitFor(t, func() bool { return h.srv.ln.Open() == 0 })

	st := d.connect(t) // the stream holds the one place
	time.Sleep(time.Second)
	if err := st.heartbeat(); err != nil {
		t.Fatalf("heartbeat on a stream older than the idle time: %v", err)
	}
	if _, ok := h.srv.reg.Get(d.id); !ok {
		t.Fatal("the stream's connection was closed as idle")
	}
	other := dialEdge(t, h)
	if err := healthCheck(other, time.Second, true); codeOf(err) != codes.DeadlineExceeded {
		t.Fatalf("second connection while the stream holds the place: %v, want DeadlineExceeded", err)
	}
	st.cancel() // the stream ends; its connection is idle, then closed
	if err := healthCheck(other, 10*time.Second, true); err != nil {
		t.Fatalf("second connection once the first was idle: %v", err)
	}
}

// TestCapListenerClose: Close ends an Accept that waits for a place, and a connection
// closed twice gives its place back once.
func TestCapListenerClose(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newCapListener(inner, 1, time.Second)
	client, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	_ = c.Close()
	if n := l.Open(); n != 0 {
		t.Fatalf("after two closes: open %d, want 0", n)
	}
	holder, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	held, err := l.Accept() // the place is taken
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	select {
	case err := <-accepted:
		t.Fatalf("Accept returned at the cap: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	_ = l.Close()
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waiting after Close")
	}
}

// TestCapListenerReadyReads: on Linux an accepted TCP connection keeps gRPC's ready reads
// (ReadOnReady: no read buffer held while idle): data, then EOF when the peer closes.
func TestCapListenerReadyReads(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ready reads are for Linux only")
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newCapListener(inner, 0, time.Second)
	defer l.Close()
	client, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rr, ok := c.(interface {
		ReadOnReady(int, mem.BufferPool) (*[]byte, int, error)
	})
	if !ok {
		t.Fatalf("%T has no ReadOnReady: gRPC would hold a read buffer per connection", c)
	}
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	pool := mem.DefaultBufferPool()
	buf, n, err := rr.ReadOnReady(1024, pool)
	if err != nil || string((*buf)[:n]) != "hello" {
		t.Fatalf("ReadOnReady = %d bytes, %v", n, err)
	}
	pool.Put(buf)
	client.Close()
	if _, _, err := rr.ReadOnReady(1024, pool); !errors.Is(err, io.EOF) {
		t.Fatalf("ReadOnReady after the peer closed: %v, want EOF", err)
	}
}
