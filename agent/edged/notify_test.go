//go:build unix

package edged_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/agent/edged"
	"github.com/keel-relay/keel/internal/sdnotify"
)

// TestNotify runs the daemon as systemd would with Type=notify, over a real unix datagram
// socket: READY=1 once started, STATUS= connected, STATUS= not connected while the relay is
// down, connected again, then STOPPING=1.
func TestNotify(t *testing.T) {
	sockDir, err := os.MkdirTemp("", "sdn") // short: sun_path holds 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	path := filepath.Join(sockDir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	next := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, _, err := conn.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}

	r := startRelay(t)
	rec := newRecorder()
	cfg := agentConfig(t, r, t.TempDir())
	enroll(t, r, cfg, rec.logger())
	n, err := sdnotify.New(func(k string) string {
		if k == "NOTIFY_SOCKET" {
			return path
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := fastOptions()
	opts.Notify = n
	d, err := edged.New(cfg, opts, rec.logger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	if m := next(); m != "READY=1\nSTATUS=node "+cfg.NodeID+": connecting to "+r.addr {
		t.Fatalf("first notification %q", m)
	}
	if m := next(); m != "STATUS=connected to "+r.addr {
		t.Fatalf("then %q, want connected", m)
	}
	r.stop(false)
	if m := next(); !strings.HasPrefix(m, "STATUS=not connected to "+r.addr+" (attempt 1, next in ") {
		t.Fatalf("relay down: %q", m)
	}
	r.start()
	for {
		m := next()
		if m == "STATUS=connected to "+r.addr {
			break
		}
		if !strings.HasPrefix(m, "STATUS=not connected to ") {
			t.Fatalf("while reconnecting: %q", m)
		}
	}
	cancel()
	if m := next(); m != "STOPPING=1\nSTATUS=stopping" {
		t.Fatalf("on stop: %q", m)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	done <- nil
}
