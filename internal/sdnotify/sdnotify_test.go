//go:build !windows

package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a unix datagram socket where systemd would, at a short path (sun_path holds
// 108 bytes), and returns its NOTIFY_SOCKET value and a reader of the next datagram.
func listen(t *testing.T, abstract bool) (string, func() string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	name, socket := filepath.Join(dir, "notify"), ""
	socket = name
	if abstract {
		name = "\x00keel-sdnotify-test-" + strconv.Itoa(os.Getpid()) + filepath.Base(dir)
		socket = "@" + name[1:]
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return socket, func() string {
		t.Helper()
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := conn.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
}

func env(kv map[string]string) Env { return func(k string) string { return kv[k] } }

func TestMessages(t *testing.T) {
	socket, next := listen(t, false)
	n, err := New(env(map[string]string{"NOTIFY_SOCKET": socket}))
	if err != nil || !n.Enabled() {
		t.Fatalf("New: %v, enabled %v", err, n.Enabled())
	}
	tests := []struct {
		name string
		send func() error
		want string
	}{
		{"ready", func() error { return n.Ready("serving\n3 nodes") }, "READY=1\nSTATUS=serving 3 nodes"},
		{"ready without status", func() error { return n.Ready("") }, "READY=1"},
		{"stopping", func() error { return n.Stopping("draining") }, "STOPPING=1\nSTATUS=draining"},
		{"status", func() error { return n.Status("waiting for disk space") }, "STATUS=waiting for disk space"},
		{"watchdog", n.Watchdog, "WATCHDOG=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.send(); err != nil {
				t.Fatal(err)
			}
			if got := next(); got != tt.want {
				t.Errorf("sent %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReloadSequence: RELOADING=1 with MONOTONIC_USEC= on CLOCK_MONOTONIC (what
// Type=notify-reload checks), then READY=1 ends the reload.
func TestReloadSequence(t *testing.T) {
	socket, next := listen(t, false)
	n, _ := New(env(map[string]string{"NOTIFY_SOCKET": socket}))
	before := monotonic()
	if err := n.Reloading("reloading"); err != nil {
		t.Fatal(err)
	}
	after := monotonic()
	lines := strings.Split(next(), "\n")
	if len(lines) != 3 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") || lines[2] != "STATUS=reloading" {
		t.Fatalf("reloading sent %q", lines)
	}
	usec, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil || usec < before.Microseconds() || usec > after.Microseconds() {
		t.Errorf("MONOTONIC_USEC=%d outside [%d, %d] (%v)", usec, before.Microseconds(), after.Microseconds(), err)
	}
	if err := n.Ready("serving"); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "READY=1\nSTATUS=serving" {
		t.Errorf("after the reload: %q", got)
	}
}

func TestAbstractSocket(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("abstract unix sockets are Linux only")
	}
	socket, next := listen(t, true)
	n, _ := New(env(map[string]string{"NOTIFY_SOCKET": socket}))
	if err := n.Ready("up"); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "READY=1\nSTATUS=up" {
		t.Errorf("got %q", got)
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		name    string
		env     map[string]string
		want    time.Duration
		wantErr bool
	}{
		{"30s", map[string]string{"WATCHDOG_USEC": "30000000"}, 15 * time.Second, false},
		{"this pid", map[string]string{"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid}, time.Second, false},
		{"another pid", map[string]string{"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, 0, false},
		{"unset", map[string]string{}, 0, false},
		{"not a number", map[string]string{"WATCHDOG_USEC": "30s"}, 0, true},
		{"negative", map[string]string{"WATCHDOG_USEC": "-1"}, 0, true},
		{"zero", map[string]string{"WATCHDOG_USEC": "0"}, 0, true},
		{"more than a day", map[string]string{"WATCHDOG_USEC": "86400000001"}, 0, true},
		{"overflow", map[string]string{"WATCHDOG_USEC": "99999999999999999999"}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.env["NOTIFY_SOCKET"] = "/nonexistent/notify"
			n, err := New(env(tt.env))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if got := n.WatchdogInterval(); got != tt.want {
				t.Errorf("interval %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNoSocket: without NOTIFY_SOCKET (not under systemd) nothing is sent and nothing fails;
// the nil Notifier is the same.
func TestNoSocket(t *testing.T) {
	n, err := New(env(map[string]string{"WATCHDOG_USEC": "1000000"}))
	if err != nil {
		t.Fatal(err)
	}
	var none *Notifier
	for _, n := range []*Notifier{n, none} {
		if n.Enabled() || n.WatchdogInterval() != 0 {
			t.Error("enabled without a socket")
		}
		for _, err := range []error{n.Ready("x"), n.Reloading("x"), n.Stopping("x"), n.Status("x"), n.Watchdog()} {
			if err != nil {
				t.Error(err)
			}
		}
	}
}

// TestRefusedSockets: a relative NOTIFY_SOCKET and one nobody listens on are errors, not
// panics.
func TestRefusedSockets(t *testing.T) {
	for _, socket := range []string{"relative/notify", "/nonexistent/notify", "@"} {
		n, _ := New(env(map[string]string{"NOTIFY_SOCKET": socket}))
		if err := n.Ready(""); err == nil {
			t.Errorf("%q: no error", socket)
		}
	}
}

func FuzzNew(f *testing.F) {
	for _, s := range []string{"30000000", "0", "-1", "1e6", "", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, usec string) {
		n, err := New(env(map[string]string{"NOTIFY_SOCKET": "/nonexistent/notify", "WATCHDOG_USEC": usec}))
		if iv := n.WatchdogInterval(); iv < 0 || iv > 12*time.Hour || (err != nil && iv != 0) {
			t.Fatalf("WATCHDOG_USEC=%q: interval %v, err %v", usec, iv, err)
		}
	})
}
