package faults

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// slowConn is a raw connection to the relay that a test feeds byte by byte.
type slowConn struct {
	conn   net.Conn
	opened time.Time
	closed chan struct{} // closed when the relay ends the connection
	cutAt  time.Duration // how long after opening (valid once closed is)
	answer string        // the first line the relay sent, if any
}

// dialSlow opens a connection and watches for the relay closing it.
func dialSlow(addr string) (*slowConn, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &slowConn{conn: conn, opened: time.Now(), closed: make(chan struct{})}
	go func() {
		line, _ := bufio.NewReader(conn).ReadString('\n')
		c.answer = strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, conn)
		c.cutAt = time.Since(c.opened)
		close(c.closed)
	}()
	return c, nil
}

// trickle writes data one byte per interval until it is all sent, ctx ends, or the relay
// closes the connection; it returns the number of bytes sent.
func (c *slowConn) trickle(ctx context.Context, data []byte, interval time.Duration) int {
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := range data {
		if _, err := c.conn.Write(data[i : i+1]); err != nil {
			return i
		}
		select {
		case <-ctx.Done():
			return i + 1
		case <-c.closed:
			return i + 1
		case <-t.C:
		}
	}
	return len(data)
}

// isCut reports whether the relay has closed the connection.
func (c *slowConn) isCut() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// headLatencies sends n HEADs one after the other and returns their latencies; every one
// must answer 200.
func headLatencies(t *testing.T, url string, n int) []time.Duration {
	t.Helper()
	client := newClient(10 * time.Second)
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		code, _, err := do(client, http.MethodHead, url, nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("HEAD: %d %v", code, err)
		}
		ds = append(ds, time.Since(start))
	}
	return ds
}

// putHeader is the start of a PUT of a shared file, up to the body.
func putHeader(path string, length int) string {
	return fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", path, length)
}

// TestSlowClients attacks the relay with 20 slow-loris connections (request headers at one
// byte per second, reconnecting when cut) and a few uploads whose body trickles at one byte
// per second. The slow-loris connections are cut by http.read_header_timeout; an upload that
// stops sending is cut by http.body_idle_timeout with 408, and so is an upload trickling its
// body below http.min_upload_rate (the default, 512 bytes/s, once body_idle_timeout has
// passed); meanwhile other clients' HEADs and PUTs succeed with latencies close to those
// measured before the attack.
func TestSlowClients(t *testing.T) {
	needBinary(t)
	const readHeaderTimeout, bodyIdleTimeout = 2 * time.Second, 3 * time.Second
	const attack = 8 * time.Second
	began := time.Now()
	dir := t.TempDir()
	rootN := relaytest.NewNode("root", "root", 0)
	src := relaytest.NewNode("src", "root", 1)
	tgt := relaytest.NewNode("tgt", "root", 2)
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(rootN, src, tgt))
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := baseSettings("root", filepath.Join(dir, "data"), nodes, api, admin)
	s["http.read_header_timeout"] = readHeaderTimeout.String()
	s["http.body_idle_timeout"] = bodyIdleTimeout.String()
	p := startRelay(t, "relay", writeConfig(t, dir, "relay.yaml", s), api, admin)

	client := newClient(30 * time.Second)
	file := content(1, 64<<10)
	if code, body, err := do(client, http.MethodPut, filesURL(p.api, tgt.ID, src.ID, "probe"), relaytest.SignedBody(t, src, file, "1d")); err != nil || code != http.StatusOK {
		t.Fatalf("PUT: %d %s %v", code, body, err)
	}
	headURL := filesURL(p.api, tgt.ID, src.ID, "probe") + "?hash=" + sha256Hex(file)
	before := headLatencies(t, headURL, 50)

	ctx, cancel := context.WithTimeout(context.Background(), attack)
	defer cancel()
	var wg sync.WaitGroup

	// 20 slow-loris connections, each replaced when the relay cuts it.
	var mu sync.Mutex
	var lorisCuts []time.Duration
	request := "GET /rudder/relay-api/1/system/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + strings.Repeat("a", 100)
	for range 20 {
		wg.Go(func() {
			for ctx.Err() == nil {
				c, err := dialSlow(api)
				if err != nil {
					t.Errorf("slow-loris dial: %v", err)
					return
				}
				c.trickle(ctx, []byte(request), time.Second)
				if c.isCut() {
					mu.Lock()
					lorisCuts = append(lorisCuts, c.cutAt)
					mu.Unlock()
				}
				c.conn.Close()
			}
		})
	}

	// 4 uploads trickled at a byte per second, for the whole attack.
	body := relaytest.SignedBody(t, src, content(2, 1<<20), "1d")
	trickles := make([]*slowConn, 4)
	for i := range trickles {
		c, err := dialSlow(api)
		if err != nil {
			t.Fatal(err)
		}
		trickles[i] = c
		if _, err := io.WriteString(c.conn, putHeader(filesPath(tgt.ID, src.ID, fmt.Sprintf("trickle%d", i)), len(body))); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { c.trickle(ctx, body, time.Second) })
	}
	// One upload that stops sending after 10 bytes.
	stalled, err := dialSlow(api)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stalled.conn, putHeader(filesPath(tgt.ID, src.ID, "stalled"), len(body))+string(body[:10])); err != nil {
		t.Fatal(err)
	}

	// Other clients, during the attack.
	time.Sleep(time.Second)
	during := headLatencies(t, headURL, 50)
	var putTimes []time.Duration
	for i := range 5 {
		start := time.Now()
		code, b, err := do(client, http.MethodPut, filesURL(p.api, tgt.ID, src.ID, fmt.Sprintf("normal%d", i)), relaytest.SignedBody(t, src, content(uint64(10+i), 256<<10), "1d"))
		if err != nil || code != http.StatusOK {
			t.Fatalf("normal PUT during the attack: %d %s %v", code, b, err)
		}
		putTimes = append(putTimes, time.Since(start))
	}
	wg.Wait()

	// The stalled upload was cut with 408.
	select {
	case <-stalled.closed:
	case <-time.After(time.Second):
		t.Fatalf("an upload that sent nothing for %s is still open", attack)
	}
	if !strings.Contains(stalled.answer, " 408 ") || stalled.cutAt > bodyIdleTimeout+1500*time.Millisecond {
		t.Errorf("stalled upload: answer %q after %s, want 408 after about %s", stalled.answer, stalled.cutAt.Round(time.Millisecond), bodyIdleTimeout)
	}
	// Every slow-loris connection was cut after read_header_timeout.
	if len(lorisCuts) < 20 {
		t.Fatalf("%d slow-loris connections cut during %s, want at least 20", len(lorisCuts), attack)
	}
	for _, d := range lorisCuts {
		if d < readHeaderTimeout-100*time.Millisecond || d > readHeaderTimeout+1500*time.Millisecond {
			t.Errorf("a slow-loris connection was cut after %s, want about %s", d.Round(time.Millisecond), readHeaderTimeout)
		}
	}
	p99b, p99d := percentile(before, 99), percentile(during, 99)
	if p99d > max(10*p99b, 100*time.Millisecond) {
		t.Errorf("HEAD p99 %s during the attack, %s before", p99d, p99b)
	}
	t.Logf("slow-loris: %d connections cut, after %s to %s (read_header_timeout %s)", len(lorisCuts),
		slices.Min(lorisCuts).Round(time.Millisecond), slices.Max(lorisCuts).Round(time.Millisecond), readHeaderTimeout)
	t.Logf("stalled upload: %q after %s (body_idle_timeout %s)", stalled.answer, stalled.cutAt.Round(time.Millisecond), bodyIdleTimeout)
	t.Logf("HEAD latency before: p50 %s p99 %s; during the attack: p50 %s p99 %s; normal 256 KiB PUTs during the attack: max %s",
		percentile(before, 50), p99b, percentile(during, 50), p99d, slices.Max(putTimes).Round(time.Microsecond))
	// Every trickled upload was cut with 408 once body_idle_timeout had passed.
	for i, c := range trickles {
		if !c.isCut() {
			t.Errorf("trickled upload %d (1 byte/s) still open after %s", i, attack)
		} else if !strings.Contains(c.answer, " 408 ") || c.cutAt > bodyIdleTimeout+1500*time.Millisecond {
			t.Errorf("trickled upload %d: answer %q after %s, want 408 after about %s", i, c.answer, c.cutAt.Round(time.Millisecond), bodyIdleTimeout)
		} else {
			t.Logf("trickled upload %d (1 byte/s): %q after %s (body_idle_timeout %s, min_upload_rate 512B)", i, c.answer, c.cutAt.Round(time.Millisecond), bodyIdleTimeout)
		}
		c.conn.Close()
	}
	p.stop(t)
	t.Logf("slow-clients test took %s", time.Since(began).Round(time.Millisecond))
}

// TestTrickledUploadsReleaseSlots shows that uploads trickling a byte per second cannot keep
// the upload slots (http.max_concurrent_uploads, here 2, both for one client): the minimum
// rate cuts them once body_idle_timeout has passed, and a normal upload waiting behind them
// goes through. (Preemption is off: the minimum rate alone releases the slots.)
func TestTrickledUploadsReleaseSlots(t *testing.T) {
	needBinary(t)
	const bodyIdle = 2 * time.Second
	p, src, tgt := slotRelay(t, map[string]string{"http.body_idle_timeout": bodyIdle.String(), "http.max_concurrent_uploads": "2",
		"http.max_uploads_per_client": "2", "http.upload_preempt_rate": "0"})
	trickles := startTrickles(t, p, src, tgt, 2)
	time.Sleep(200 * time.Millisecond) // the trickles take the slots
	start := time.Now()
	code, b, err := do(newClient(30*time.Second), http.MethodPut, filesURL(p.api, tgt.ID, src.ID, "normal"), relaytest.SignedBody(t, src, content(3, 4<<10), "1d"))
	if err != nil || code != http.StatusOK {
		t.Fatalf("normal PUT behind trickled uploads: %d %s %v", code, b, err)
	}
	waited := time.Since(start)
	if waited > bodyIdle+3*time.Second {
		t.Errorf("a normal PUT waited %s behind two trickled uploads, want about body_idle_timeout (%s)", waited.Round(time.Millisecond), bodyIdle)
	}
	for i, c := range trickles {
		<-c.closed
		if !strings.Contains(c.answer, " 408 ") {
			t.Errorf("trickled upload %d: answer %q, want 408", i, c.answer)
		}
		c.conn.Close()
	}
	t.Logf("a 4 KiB PUT waited %s for an upload slot held by 2 uploads trickling 1 byte/s (max_concurrent_uploads 2, body_idle_timeout %s, min_upload_rate 512B)",
		waited.Round(time.Millisecond), bodyIdle)
	p.stop(t)
}

// TestUploadSlotWait: with the minimum rate off, uploads trickling a byte per second hold
// both slots; a normal upload waits http.upload_slot_wait, then gets 503 with Retry-After
// instead of waiting for as long as they last.
func TestUploadSlotWait(t *testing.T) {
	needBinary(t)
	const slotWait = 2 * time.Second
	p, src, tgt := slotRelay(t, map[string]string{"http.body_idle_timeout": "30s", "http.max_concurrent_uploads": "2",
		"http.max_uploads_per_client": "2", "http.min_upload_rate": "0", "http.upload_slot_wait": slotWait.String()})
	trickles := startTrickles(t, p, src, tgt, 2)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	req, err := http.NewRequest(http.MethodPut, filesURL(p.api, tgt.ID, src.ID, "normal"), bytes.NewReader(relaytest.SignedBody(t, src, content(3, 4<<10), "1d")))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := newClient(30 * time.Second).Do(req)
	if err != nil {
		t.Fatalf("normal PUT: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	waited := time.Since(start)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("normal PUT with both slots held: %d (Retry-After %q) %s, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if waited < slotWait-100*time.Millisecond || waited > slotWait+2*time.Second {
		t.Errorf("503 after %s, want after about upload_slot_wait (%s)", waited.Round(time.Millisecond), slotWait)
	}
	t.Logf("with both slots held by trickles: %d %q after %s (upload_slot_wait %s)", resp.StatusCode, strings.TrimSpace(string(body)), waited.Round(time.Millisecond), slotWait)
	for _, c := range trickles {
		c.conn.Close()
	}
	p.stop(t)
}

// slotRelay starts a relay with a source and a target node and the extra settings.
func slotRelay(t *testing.T, extra map[string]string) (*proc, *relaytest.Node, *relaytest.Node) {
	t.Helper()
	dir := t.TempDir()
	rootN := relaytest.NewNode("root", "root", 0)
	src := relaytest.NewNode("src", "root", 1)
	tgt := relaytest.NewNode("tgt", "root", 2)
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(rootN, src, tgt))
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := baseSettings("root", filepath.Join(dir, "data"), nodes, api, admin)
	for k, v := range extra {
		s[k] = v
	}
	return startRelay(t, "relay", writeConfig(t, dir, "relay.yaml", s), api, admin), src, tgt
}

// startTrickles opens n uploads of a 1 MiB signed body, its signature block at once (an
// upload takes a slot once its block is checked) and then its file at a byte per second, until
// the relay cuts them or the test ends.
func startTrickles(t *testing.T, p *proc, src, tgt *relaytest.Node, n int) []*slowConn {
	t.Helper()
	body := relaytest.SignedBody(t, src, content(2, 1<<20), "1d")
	blockLen := bytes.Index(body, []byte("\n\n")) + 2
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	api := strings.TrimPrefix(p.api, "http://")
	trickles := make([]*slowConn, n)
	for i := range trickles {
		c, err := dialSlow(api)
		if err != nil {
			t.Fatal(err)
		}
		trickles[i] = c
		if _, err := io.WriteString(c.conn, putHeader(filesPath(tgt.ID, src.ID, fmt.Sprintf("trickle%d", i)), len(body))+string(body[:blockLen])); err != nil {
			t.Fatal(err)
		}
		go c.trickle(ctx, body[blockLen:], time.Second)
	}
	return trickles
}
