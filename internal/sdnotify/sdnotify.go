// Package sdnotify speaks systemd's service notification protocol (sd_notify(3)) with the
// standard library: readiness, reloads, stopping, status lines and the watchdog, sent as unix
// datagrams to $NOTIFY_SOCKET (a path, or an abstract socket name starting with '@'). A
// Notifier from New is a no-op when NOTIFY_SOCKET is unset, and always on Windows.
package sdnotify

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Notifier sends notifications to the service manager. The nil *Notifier and one made
// without a socket send nothing. Its methods are safe for concurrent use.
type Notifier struct {
	mu       sync.Mutex
	socket   string        // NOTIFY_SOCKET; "" = no-op
	watchdog time.Duration // WATCHDOG_USEC when it is meant for this process; 0 = none
	now      func() time.Duration
}

// Env is what New reads from the environment (os.Getenv in production).
type Env func(key string) string

// New returns the Notifier of this process from env: NOTIFY_SOCKET, WATCHDOG_USEC and
// WATCHDOG_PID (the watchdog applies only when WATCHDOG_PID is unset or this process's id).
// A malformed WATCHDOG_USEC is returned as an error with a Notifier that sends no watchdog.
func New(env Env) (*Notifier, error) {
	n := &Notifier{socket: env("NOTIFY_SOCKET"), now: monotonic}
	if !supported || n.socket == "" {
		return &Notifier{}, nil
	}
	usec := env("WATCHDOG_USEC")
	if usec == "" {
		return n, nil
	}
	if pid := env("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(getpid()) {
		return n, nil
	}
	v, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || v == 0 || v > uint64(24*time.Hour/time.Microsecond) {
		return n, fmt.Errorf("WATCHDOG_USEC=%q: not a positive number of microseconds up to a day", usec)
	}
	n.watchdog = time.Duration(v) * time.Microsecond
	return n, nil
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// WatchdogInterval is how often Watchdog must be called: half of WATCHDOG_USEC, as
// sd_watchdog_enabled(3) advises; 0 when no watchdog is set for this process.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog / 2
}

// Ready tells the service manager the service serves (READY=1), with status as its STATUS=
// line when not empty. It also ends a reload that Reloading announced.
func (n *Notifier) Ready(status string) error { return n.send("READY=1", status) }

// Reloading tells the service manager a reload has begun (RELOADING=1 with MONOTONIC_USEC=,
// as Type=notify-reload requires); Ready ends it.
func (n *Notifier) Reloading(status string) error {
	if !n.Enabled() {
		return nil
	}
	return n.send("RELOADING=1\nMONOTONIC_USEC="+strconv.FormatInt(n.now().Microseconds(), 10), status)
}

// Stopping tells the service manager the service is shutting down (STOPPING=1).
func (n *Notifier) Stopping(status string) error { return n.send("STOPPING=1", status) }

// Status sends a free-form status line (STATUS=), shown by systemctl status.
func (n *Notifier) Status(status string) error { return n.send("", status) }

// Watchdog feeds the watchdog (WATCHDOG=1).
func (n *Notifier) Watchdog() error { return n.send("WATCHDOG=1", "") }

// send writes one datagram: state, then STATUS=status (newlines in it become spaces).
func (n *Notifier) send(state, status string) error {
	if !n.Enabled() {
		return nil
	}
	var b strings.Builder
	b.WriteString(state)
	if status != "" {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("STATUS=")
		b.WriteString(strings.ReplaceAll(status, "\n", " "))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := sendDatagram(n.socket, b.String()); err != nil {
		return fmt.Errorf("sd_notify %q: %w", firstLine(b.String()), err)
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
