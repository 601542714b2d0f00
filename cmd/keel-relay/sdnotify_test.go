//go:build linux

package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// notifySocket is a unix datagram socket where systemd would listen (NOTIFY_SOCKET): the
// notifications the relay sends arrive on msgs, in order, each with its arrival time.
type notifySocket struct {
	path string
	msgs chan notification
}

type notification struct {
	text string
	at   time.Time
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn") // short: sun_path holds 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ns := &notifySocket{path: filepath.Join(dir, "notify"), msgs: make(chan notification, 1024)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(ns.msgs)
				return
			}
			ns.msgs <- notification{string(buf[:n]), time.Now()}
		}
	}()
	return ns
}

// next returns the next notification other than WATCHDOG=1.
func (ns *notifySocket) next(t *testing.T) string {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case m := <-ns.msgs:
			if m.text != "WATCHDOG=1" {
				return m.text
			}
		case <-timeout:
			t.Fatal("no notification within 15s")
		}
	}
}

// TestSystemdNotify runs the relay as systemd would with Type=notify and WatchdogSec=:
// READY=1 comes once the API answers, the watchdog is fed at half of WATCHDOG_USEC, a reload
// is RELOADING=1 (with MONOTONIC_USEC) then READY=1, `keel-relay reload` fails with the
// reason when the relay refuses, and SIGTERM sends STOPPING=1.
func TestSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	ns := listenNotify(t)
	rootN, src := relaytest.NewNode("root", "root", 0), relaytest.NewNode("src", "root", 1)
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(rootN, src))
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	cfg := writeConfig(t, dir, "relay.yaml", relayConf{NodeID: "root", DataDir: filepath.Join(dir, "data"), Nodes: nodes,
		Listen: api, Admin: admin})
	// The admin API wants a token: the reload command must send it.
	withToken := procOptions{env: []string{"KEEL_ADMIN_TOKEN_FILE=" + filepath.Join(dir, "admin.token")}}
	p := startProc(t, "relay", procOptions{env: append(withToken.env, "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=400000")}, "run", "--config", cfg)

	// Readiness: the first notification is READY=1, and the API answers at once.
	ready := ns.next(t)
	if !strings.HasPrefix(ready, "READY=1\nSTATUS=serving: api "+api) || !strings.Contains(ready, "2 nodes") {
		t.Fatalf("first notification %q, want READY=1 with the serving status", ready)
	}
	resp, err := newClient(5 * time.Second).Get("http://" + api + "/rudder/relay-api/1/system/status")
	if err != nil {
		t.Fatalf("READY=1 sent but the API does not answer: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("READY=1 sent but status answers %d", resp.StatusCode)
	}

	// Watchdog: WATCHDOG_USEC=400ms, fed every 200ms.
	var feeds []time.Time
	for len(feeds) < 6 {
		select {
		case m := <-ns.msgs:
			if m.text == "WATCHDOG=1" {
				feeds = append(feeds, m.at)
			} else {
				t.Fatalf("unexpected notification %q", m.text)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("watchdog fed %d times in 5s", len(feeds))
		}
	}
	if avg := feeds[len(feeds)-1].Sub(feeds[0]) / time.Duration(len(feeds)-1); avg < 150*time.Millisecond || avg > 300*time.Millisecond {
		t.Errorf("watchdog fed every %v on average, want 200ms (half of WATCHDOG_USEC)", avg)
	}

	// A reload that works: the command waits for it and says so.
	code, out, errOut := runCLI(t, withToken, "reload", "--config", cfg)
	if code != 0 || !strings.Contains(out, "reloaded: 2 nodes") {
		t.Fatalf("reload: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	reloading := ns.next(t)
	if !strings.HasPrefix(reloading, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("reload began with %q, want RELOADING=1 and MONOTONIC_USEC=", reloading)
	}
	if m := ns.next(t); !strings.HasPrefix(m, "READY=1\nSTATUS=serving") || strings.Contains(m, "incomplete") {
		t.Fatalf("reload ended with %q", m)
	}

	// A node map the relay refuses: exit 1 with the reason; the relay is READY again, its
	// status saying the reload was incomplete.
	relaytest.WriteFileAtomic(t, nodes, []byte("{not json"))
	code, out, errOut = runCLI(t, withToken, "reload", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "refused") || !strings.Contains(errOut, "node map") {
		t.Fatalf("refused reload: exit %d, stdout %q, stderr %q; want 1 and the reason", code, out, errOut)
	}
	if m := ns.next(t); !strings.HasPrefix(m, "RELOADING=1\n") {
		t.Fatalf("refused reload began with %q", m)
	}
	if m := ns.next(t); !strings.HasPrefix(m, "READY=1\nSTATUS=serving") || !strings.Contains(m, "last reload incomplete") {
		t.Fatalf("refused reload ended with %q", m)
	}

	// A config file that does not parse: the command says so without asking the relay.
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("log: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, procOptions{}, "reload", "--config", filepath.Join(dir, "broken.yaml")); code != 1 || errOut == "" {
		t.Fatalf("reload with a broken config: exit %d, stderr %q", code, errOut)
	}

	p.signal(t, syscall.SIGTERM)
	if m := ns.next(t); !strings.HasPrefix(m, "STOPPING=1\n") {
		t.Fatalf("on SIGTERM: %q, want STOPPING=1", m)
	}
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// TestReloadUnreachable: no relay behind admin.listen is an error naming the listener.
func TestReloadUnreachable(t *testing.T) {
	addr := relaytest.FreeAddr(t)
	code, _, errOut := runCLI(t, procOptions{}, "reload", "--admin", addr)
	if code != 1 || !strings.Contains(errOut, "admin listener") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCLI(t, procOptions{}, "reload", "extra"); code != 2 {
		t.Fatalf("reload with an argument: exit %d, want 2", code)
	}
}
