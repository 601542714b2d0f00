package faults

// Hostile clients and the metrics: a flood of made-up methods, from an allowed and from a
// refused peer, must not grow the request counter's series, /metrics or the relay's memory;
// /metrics on an admin listener that is not loopback only answers admin.metrics_networks.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// hostIPv4 returns a non-loopback IPv4 address of this machine, to connect from so the relay
// sees a peer that is not loopback; the test is skipped when there is none.
func hostIPv4(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("no interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address to connect from")
	return ""
}

// rssKiB returns the resident set size of pid in KiB.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// oddMethods sends n requests with distinct made-up methods to unknown paths, pipelined on one
// connection to addr, and returns how many answers had each status.
func oddMethods(t *testing.T, addr, prefix string, n int) map[int]int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		w := bufio.NewWriter(conn)
		for i := range n {
			fmt.Fprintf(w, "%s%07d /odd/%d HTTP/1.1\r\nHost: x\r\n\r\n", prefix, i, i)
		}
		_ = w.Flush()
	}()
	_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(conn)
	codes := map[int]int{}
	for i := range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d of %d: %v", i, n, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		codes[resp.StatusCode]++
	}
	return codes
}

func scrape(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := newClient(10 * time.Second).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// TestHostileOddMethods: 20,000 requests with distinct methods, half from loopback (allowed)
// and half from the machine's own non-loopback address (refused by http.allowed_networks),
// leave two request-counter series for them, a /metrics of the same size and the relay's
// memory where it was.
func TestHostileOddMethods(t *testing.T) {
	needBinary(t)
	ip := hostIPv4(t)
	dir := t.TempDir()
	port := relaytest.FreePort(t)
	api, admin := "0.0.0.0:"+port, relaytest.FreeAddr(t)
	s := baseSettings("root", filepath.Join(dir, "data"), "", api, admin)
	p := startRelay(t, "relay", writeConfig(t, dir, "relay.yaml", s), "127.0.0.1:"+port, admin)

	_, before := scrape(t, p.admin+"/metrics")
	rssBefore := rssKiB(t, p.cmd.Process.Pid)
	const n = 10000
	start := time.Now()
	if codes := oddMethods(t, "127.0.0.1:"+port, "M", n); codes[http.StatusNotFound] != n {
		t.Errorf("from loopback: answers %v, want %d × 404", codes, n)
	}
	if codes := oddMethods(t, ip+":"+port, "R", n); codes[http.StatusForbidden] != n {
		t.Errorf("from %s (not allowed): answers %v, want %d × 403", ip, codes, n)
	}
	took := time.Since(start)
	_, after := scrape(t, p.admin+"/metrics")
	rssAfter := rssKiB(t, p.cmd.Process.Pid)
	t.Logf("%d requests in %s; /metrics %d -> %d bytes; RSS %d -> %d KiB", 2*n, took.Round(time.Millisecond), len(before), len(after), rssBefore, rssAfter)

	if got := strings.Count(after, "method=\"other\",route=\"other\"} "); got != 2 {
		t.Errorf("%d request-counter series for route other, want 2 (method other, codes 404 and 403)", got)
	}
	if grown := len(after) - len(before); grown > 4<<10 {
		t.Errorf("/metrics grew by %d bytes, want under 4 KiB (a few series and counts)", grown)
	}
	if grown := rssAfter - rssBefore; grown > 32<<10 {
		t.Errorf("RSS grew by %d KiB over %d requests, want under 32 MiB", grown, 2*n)
	}
}

// TestHostileMetricsFromOutside: with the admin listener on every address, /metrics answers
// loopback and admin.metrics_networks only; adding the scraper's address is a reload away.
func TestHostileMetricsFromOutside(t *testing.T) {
	needBinary(t)
	ip := hostIPv4(t)
	dir := t.TempDir()
	port := relaytest.FreePort(t)
	api, admin := relaytest.FreeAddr(t), "0.0.0.0:"+port
	s := baseSettings("root", filepath.Join(dir, "data"), "", api, admin)
	cfg := writeConfig(t, dir, "relay.yaml", s)
	p := startRelay(t, "relay", cfg, api, "127.0.0.1:"+port)

	if code, body := scrape(t, "http://"+ip+":"+port+"/metrics"); code != http.StatusForbidden || strings.Contains(body, "keel_") {
		t.Errorf("/metrics from %s: %d %.80q, want 403 without metrics", ip, code, body)
	}
	if code, _ := scrape(t, p.admin+"/metrics"); code != http.StatusOK {
		t.Errorf("/metrics from loopback: %d, want 200", code)
	}
	s["admin.metrics_networks"] = "[" + ip + "/32]"
	writeConfig(t, dir, "relay.yaml", s)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	relaytest.Eventually(t, 10*time.Second, "the reload to let "+ip+" scrape", func() bool {
		code, body := scrape(t, "http://"+ip+":"+port+"/metrics")
		return code == http.StatusOK && strings.Contains(body, "keel_build_info")
	})
	if code, _ := scrape(t, "http://"+ip+":"+port+"/status"); code != http.StatusForbidden {
		t.Errorf("admin /status from %s: %d, want 403 (the admin API stays loopback only)", ip, code)
	}
}
