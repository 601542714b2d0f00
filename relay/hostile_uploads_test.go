package relay_test

// Hostile and careless uploaders against a real relay on loopback (issue 12, findings 1, 5
// and 7): a client that pipelines PUTs and half-closes its side, slow uploads with a bogus
// digest holding the upload slots, blocks with a wrong key, and client lines (hash_value,
// expires) that must not reach storage.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/relaytest"
	"github.com/keel-relay/keel/relay/wire/sigblock"
	"github.com/keel-relay/keel/storage"
)

// pipelinedHalfClose sends, in one write on one connection, the requests reqs (complete HTTP/1.1
// requests), then half-closes the connection (shutdown(SHUT_WR)) and reads every answer until
// the relay closes. It returns the answers read, their bodies, and the error that ended the
// reading (nil at a clean end of stream).
func pipelinedHalfClose(addr string, reqs ...[]byte) ([]*http.Response, []string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	if _, err := c.Write(bytes.Join(reqs, nil)); err != nil {
		return nil, nil, err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return nil, nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	var resps []*http.Response
	var bodies []string
	for len(resps) < len(reqs) {
		method := strings.SplitN(string(reqs[len(resps)]), " ", 2)[0]
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return resps, bodies, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return resps, bodies, err
		}
		resps, bodies = append(resps, resp), append(bodies, string(b))
	}
	return resps, bodies, nil
}

// rawRequest lays out one HTTP/1.1 request with a Content-Length (when body is not nil).
func rawRequest(method, path string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: relay\r\n", method, path)
	if body != nil {
		fmt.Fprintf(&b, "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// TestPipelinedHalfClose: a client that pipelines "PUT a", "GET /system/info", "PUT b" in one
// write and half-closes gets a real answer to each, and a 2xx only for a file that is then
// there (HEAD 200 with its hash). Go's server cancels the request context when it reads the
// client's EOF (golang/go#18527): the relay used to answer such a PUT with an empty 200 and
// store nothing, about one time in two.
func TestPipelinedHalfClose(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), nil)
	const conns, parallel = 100, 8
	fileA, fileB := content(300, 21), content(200, 22) // all three requests fit the server's 4 KiB read buffer
	bodyA, bodyB := relaytest.SignedBody(t, src, fileA, ""), relaytest.SignedBody(t, src, fileB, "")

	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			pathA, pathB := fmt.Sprintf("/shared-files/n1/src/a%d?ttl=1h", i), fmt.Sprintf("/shared-files/n1/src/b%d?ttl=1h", i)
			resps, bodies, err := pipelinedHalfClose(r.APIAddr().String(),
				rawRequest(http.MethodPut, pathA, bodyA),
				rawRequest(http.MethodGet, "/rudder/relay-api/1/system/info", nil),
				rawRequest(http.MethodPut, pathB, bodyB))
			if err != nil {
				fail("connection %d: %d answers, then %v", i, len(resps), err)
			}
			for j, resp := range resps {
				if j == 1 {
					continue // system/info
				}
				path, file := pathA, fileA
				if j == 2 {
					path, file = pathB, fileB
				}
				// Every answer is a real one: a status with a body that says what happened.
				if bodies[j] == "" {
					fail("connection %d, PUT %s: %d with an empty body", i, path, resp.StatusCode)
				}
				if resp.StatusCode/100 != 2 {
					// A refusal is honest only if nothing was stored; with free slots and a
					// whole body there is no reason to refuse at all.
					fail("connection %d, PUT %s: %d %q with free upload slots", i, path, resp.StatusCode, bodies[j])
					continue
				}
				key := strings.TrimSuffix(path, "?ttl=1h")
				if a, err := tryDo(http.MethodHead, r.URL+key+"?hash="+sha256hex(file), nil, nil); err != nil || a.code != http.StatusOK {
					fail("connection %d, PUT %s answered %d %q, then HEAD: %d %v (nothing stored)", i, path, resp.StatusCode, bodies[j], a.code, err)
				}
			}
		})
	}
	wg.Wait()
	for _, f := range failures[:min(len(failures), 20)] {
		t.Error(f)
	}
	if len(failures) > 20 {
		t.Errorf("... and %d more failures", len(failures)-20)
	}
}

// TestClientLinesNeverStored: a block with a wrong hash_value and an expires line is stored,
// and sent to the next hop, with the relay's hash_value and expires instead, the client's other
// lines kept in their order (SPEC-relay-api.md: a client's hash_value never reaches storage,
// its expires line is ignored). The next hop is a plain listener that keeps what it receives.
func TestClientLinesNeverStored(t *testing.T) {
	t.Parallel()
	received := make(chan []byte, 4)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		received <- b
	}))
	t.Cleanup(upstream.Close)
	n1 := relaytest.NewNode("n1", "relay1", 1)
	src := relaytest.NewNode("src", "relay1", 3)
	r := startRelay(t, "relay1", relaytest.NodeMap(n1, src), func(c *config.Config) {
		c.Role = config.RoleRelay
		c.Upstream = upstream.URL
	})
	file := content(3000, 23)
	sum := sha256hex(file)
	lines := blockLines(t, src.Key, "sha256", file, src.Hostname, "")
	lines = withLine(lines, "hash_value", "hash_value = "+sha256hex([]byte("not the file")))
	lines = slices.Insert(lines, 3, "expires=99999999999", "comment=kept")
	body := putBody(lines, file)

	// wantLines is the client's block as the relay must keep it, expires aside.
	var wantLines []string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "expires"):
		case strings.HasPrefix(l, "hash_value"):
			wantLines = append(wantLines, "hash_value="+sum)
		default:
			wantLines = append(wantLines, l)
		}
	}
	check := func(what string, raw []byte, expires time.Time) {
		t.Helper()
		block, err := sigblock.Read(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			t.Fatalf("%s: %v in %q", what, err, raw)
		}
		got := strings.Split(strings.TrimSuffix(string(block.Raw), "\n"), "\n")
		want := append(slices.Clone(wantLines), "expires="+strconv.FormatInt(expires.Unix(), 10))
		if !slices.Equal(got, want) {
			t.Errorf("%s: block\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if time.Until(expires) < 59*time.Minute || time.Until(expires) > time.Hour {
			t.Errorf("%s: expires %s, want an hour from now (the TTL, not the client's line)", what, expires)
		}
	}

	// Queued for the upstream: what the next hop receives.
	if a := put(t, r, "/shared-files/elsewhere/src/f?ttl=1h", body); a.code != http.StatusOK {
		t.Fatalf("PUT for the upstream: %d %s", a.code, a.body)
	}
	var sent []byte
	select {
	case sent = <-received:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing reached the upstream")
	}
	block, err := sigblock.Read(bufio.NewReader(bytes.NewReader(sent)))
	if err != nil {
		t.Fatalf("the upstream received %q: %v", sent, err)
	}
	exp, err := strconv.ParseInt(fieldOf(block, "expires"), 10, 64)
	if err != nil {
		t.Fatalf("the upstream's block has no relay expires: %q", block.Raw)
	}
	check("sent upstream", sent, time.Unix(exp, 0))
	if !bytes.HasSuffix(sent, append([]byte("\n\n"), file...)) {
		t.Error("the upstream did not receive the file's bytes after the block")
	}

	// Stored for a node of the relay: the record, read from the store once the relay stopped.
	if a := put(t, r, "/shared-files/n1/src/f?ttl=1h", body); a.code != http.StatusOK {
		t.Fatalf("PUT for n1: %d %s", a.code, a.body)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(relay.StorageOptions(r.Config), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	meta, err := st.StatFile(storage.FileKey{Target: "n1", Source: "src", ID: "f"})
	if err != nil {
		t.Fatal(err)
	}
	if meta.Hash != sum {
		t.Errorf("stored hash %s, want %s", meta.Hash, sum)
	}
	check("stored", append(meta.Header, '\n'), meta.Expires)
}

// fieldOf returns the value of key's line in b ("" when absent).
func fieldOf(b *sigblock.Block, key string) string {
	for _, f := range b.Fields {
		if f.Key == key {
			return f.Value
		}
	}
	return ""
}

// dialFrom opens a connection to the relay from a loopback address of the test's choosing
// (127.0.0.0/8 is all loopback on Linux): distinct addresses are distinct clients for the
// upload slots' per-client share.
func dialFrom(t testing.TB, r *relaytest.Relay, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", r.APIAddr().String())
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// upload is a PUT sent piece by piece over a raw connection.
type upload struct {
	conn   net.Conn
	start  time.Time
	answer chan uploadAnswer // the relay's answer, once
}

type uploadAnswer struct {
	code       int
	retryAfter string
	body       string
	after      time.Duration // since the upload started
	err        error
}

// slowUpload starts a PUT of body to path from the loopback address from: the request head and
// the first n bytes at once, then the rest in pieces of piece bytes every pace, until all is sent
// or the relay answers. The answer arrives on u.answer.
func slowUpload(t testing.TB, r *relaytest.Relay, from, path string, body []byte, n, piece int, pace time.Duration) *upload {
	t.Helper()
	c := dialFrom(t, r, from)
	u := &upload{conn: c, start: time.Now(), answer: make(chan uploadAnswer, 1)}
	if _, err := c.Write(rawHead(path, len(body))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(body[:n]); err != nil {
		t.Fatal(err)
	}
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodPut})
		if err != nil {
			u.answer <- uploadAnswer{err: err, after: time.Since(u.start)}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		u.answer <- uploadAnswer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b), after: time.Since(u.start)}
	}()
	go func() {
		for rest := body[n:]; len(rest) > 0; {
			select {
			case <-answered:
				return
			case <-time.After(pace):
			}
			k := min(piece, len(rest))
			if _, err := c.Write(rest[:k]); err != nil {
				return
			}
			rest = rest[k:]
		}
	}()
	return u
}

// rawHead is the head of a PUT with a Content-Length.
func rawHead(path string, length int) []byte {
	return fmt.Appendf(nil, "PUT %s HTTP/1.1\r\nHost: relay\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", path, length)
}

// bogusBody is what an attacker can send for a source whose public key it knows (the node map
// and every block the source ever sent show it): a block with the source's key whose digest
// is not a signature of the content, then size bytes.
func bogusBody(t testing.TB, src *relaytest.Node, size int) []byte {
	t.Helper()
	lines := blockLines(t, src.Key, "sha256", []byte("something else"), src.Hostname, "1d")
	return putBody(lines, content(size, 31))
}

// putFrom sends a whole PUT from the loopback address from and returns the answer.
func putFrom(t testing.TB, r *relaytest.Relay, from, path string, body []byte) uploadAnswer {
	t.Helper()
	u := slowUpload(t, r, from, path, body, len(body), 1, time.Millisecond)
	select {
	case a := <-u.answer:
		return a
	case <-time.After(30 * time.Second):
		t.Fatalf("PUT %s from %s: no answer in 30s", path, from)
		return uploadAnswer{}
	}
}

// TestSlowBogusUploadsOneClient: slow uploads with a bogus digest from one client take its
// share of the upload slots (a quarter of them), not all of them: a real PUT from another
// client gets a slot at once. Before, 64 such connections at 600 B/s held every slot and a
// real PUT got 503 after http.upload_slot_wait.
func TestSlowBogusUploadsOneClient(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), func(c *config.Config) {
		c.HTTP.MaxConcurrentUploads = 8 // a quarter: 2 per client
		c.HTTP.BodyIdleTimeout = 2 * time.Second
		c.HTTP.UploadSlotWait = 2 * time.Second
	})
	bogus := bogusBody(t, src, 1<<20)
	blockLen := bytes.Index(bogus, []byte("\n\n")) + 2
	var attackers []*upload
	for i := range 16 { // 1 KiB/s each: above min_upload_rate, they keep their slots
		attackers = append(attackers, slowUpload(t, r, "127.0.0.1", fmt.Sprintf("/shared-files/n1/src/bogus%d?ttl=1h", i), bogus, blockLen, 100, 100*time.Millisecond))
	}
	waitFor(t, "the attackers to hold their share of the slots", 5*time.Second, func() bool {
		return metricValue(t, metricsText(t, r), "keel_upload_slots_in_use") == 2 &&
			metricValue(t, metricsText(t, r), "keel_upload_slots_waiting") == 14
	})
	file := content(4000, 32)
	start := time.Now()
	a := putFrom(t, r, "127.0.0.2", "/shared-files/n1/src/real?ttl=1h", relaytest.SignedBody(t, src, file, ""))
	if a.code != http.StatusOK || time.Since(start) > time.Second {
		t.Errorf("a real PUT from another client, with one client's 16 slow bogus uploads in progress: %d %q after %s, want 200 at once",
			a.code, a.body, time.Since(start).Round(time.Millisecond))
	}
	// The attacker's own next upload waits behind its share.
	a = putFrom(t, r, "127.0.0.1", "/shared-files/n1/src/same-client?ttl=1h", relaytest.SignedBody(t, src, file, ""))
	if a.code != http.StatusServiceUnavailable || a.retryAfter == "" || !strings.Contains(a.body, "http.max_uploads_per_client") {
		t.Errorf("a PUT from the client at its share: %d (Retry-After %q) %q, want 503 naming http.max_uploads_per_client", a.code, a.retryAfter, a.body)
	}
	for _, u := range attackers {
		u.conn.Close()
	}
}

// TestSlowBogusUploadsManyClients: slow uploads with a bogus digest from several clients, each
// within its share, hold every slot: a real PUT waits until the slowest holder has held its
// slot for body_idle_timeout, which is then cut (503, Retry-After) to make room
// (http.upload_preempt_rate).
func TestSlowBogusUploadsManyClients(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	const bodyIdle = time.Second
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), func(c *config.Config) {
		c.HTTP.MaxConcurrentUploads = 4
		c.HTTP.MaxUploadsPerClient = 1
		c.HTTP.BodyIdleTimeout = bodyIdle
		c.HTTP.UploadSlotWait = 8 * time.Second
	})
	bogus := bogusBody(t, src, 1<<20)
	blockLen := bytes.Index(bogus, []byte("\n\n")) + 2
	var attackers []*upload
	for i := range 4 { // 1 KiB/s each, from 4 addresses
		attackers = append(attackers, slowUpload(t, r, fmt.Sprintf("127.0.1.%d", i+1), fmt.Sprintf("/shared-files/n1/src/bogus%d?ttl=1h", i), bogus, blockLen, 100, 100*time.Millisecond))
	}
	waitFor(t, "the attackers to hold every slot", 5*time.Second, func() bool {
		return metricValue(t, metricsText(t, r), "keel_upload_slots_in_use") == 4
	})
	start := time.Now()
	a := putFrom(t, r, "127.0.0.2", "/shared-files/n1/src/real?ttl=1h", relaytest.SignedBody(t, src, content(4000, 33), ""))
	if took := time.Since(start); a.code != http.StatusOK || took > bodyIdle+2*time.Second {
		t.Errorf("a real PUT with every slot held by slow bogus uploads: %d %q after %s, want 200 within about body_idle_timeout (%s)", a.code, a.body, took.Round(time.Millisecond), bodyIdle)
	}
	cut := 0
	for _, u := range attackers {
		select {
		case a := <-u.answer:
			if a.code != http.StatusServiceUnavailable || a.retryAfter == "" || !strings.Contains(a.body, "upload_preempt_rate") {
				t.Errorf("a cut upload: %d (Retry-After %q) %q %v, want 503 with Retry-After", a.code, a.retryAfter, a.body, a.err)
			}
			cut++
		case <-time.After(100 * time.Millisecond):
		}
		u.conn.Close()
	}
	if cut != 1 {
		t.Errorf("%d slow uploads cut, want 1 (one per waiting upload)", cut)
	}
	if got := metricValue(t, metricsText(t, r), "keel_upload_preempted_total"); got != 1 {
		t.Errorf("keel_upload_preempted_total = %v, want 1", got)
	}
}

// TestSlotCutAtDeclaredSize: an upload that declares a small body holds its slot at most
// body_idle_timeout + its declared size / min_upload_rate, however it sent its block. Before,
// the bytes of the block counted toward the rate too: a block padded to 64 KiB, sent at once,
// bought its upload two more minutes of slot at 512 B/s.
func TestSlotCutAtDeclaredSize(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	const bodyIdle = time.Second
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), func(c *config.Config) {
		c.HTTP.BodyIdleTimeout = bodyIdle
		c.HTTP.MinUploadRate = 512
	})
	file := content(1024, 34)
	lines := blockLines(t, src.Key, "sha256", file, src.Hostname, "")
	lines = append(lines, "pad="+strings.Repeat("x", 60<<10))
	body := putBody(lines, file)
	blockLen := bytes.Index(body, []byte("\n\n")) + 2
	// The block at once, then the 1 KiB body a byte every 500ms: never idle, far below the rate.
	u := slowUpload(t, r, "127.0.0.1", "/shared-files/n1/src/padded?ttl=1h", body, blockLen, 1, 500*time.Millisecond)
	deadline := bodyIdle + time.Duration(len(file))*time.Second/512 // 3s
	select {
	case a := <-u.answer:
		if a.code != http.StatusRequestTimeout || a.after > deadline+2*time.Second {
			t.Errorf("upload of a declared 1 KiB body trickled after a 60 KiB block: %d %q after %s, want 408 by %s", a.code, a.body, a.after.Round(time.Millisecond), deadline)
		}
	case <-time.After(deadline + 5*time.Second):
		t.Fatalf("upload of a declared 1 KiB body trickled after a 60 KiB block: no answer after %s, want 408 by %s", deadline+5*time.Second, deadline)
	}
}

// TestRefusedBeforeSlot: a block with a wrong key, a malformed block or no TTL is refused at
// once, even with every upload slot held: nothing is checked after taking a slot that could
// be checked before.
func TestRefusedBeforeSlot(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	other := relaytest.NewNode("other", "root", 4)
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), func(c *config.Config) {
		c.HTTP.MaxConcurrentUploads = 1
		c.HTTP.UploadSlotWait = 5 * time.Second
		c.HTTP.UploadPreemptRate = 0
	})
	// A real upload from another address holds the only slot.
	held := relaytest.SignedBody(t, src, content(1<<20, 35), "")
	holder := slowUpload(t, r, "127.0.0.3", "/shared-files/n1/src/held?ttl=1h", held, bytes.Index(held, []byte("\n\n"))+2, 1000, 100*time.Millisecond)
	waitFor(t, "the upload to hold the slot", 5*time.Second, func() bool {
		return metricValue(t, metricsText(t, r), "keel_upload_slots_in_use") == 1
	})
	file := content(2000, 36)
	lines := blockLines(t, src.Key, "sha256", file, src.Hostname, "")
	tests := []struct {
		name, reason string
		body         []byte
		code         int
		say          string
	}{
		{"wrong key", "key", relaytest.SignedBody(t, other, file, "1d"), http.StatusForbidden, "not the key of source node src"},
		{"unknown algorithm", "block", putBody(withLine(lines, "algorithm", "algorithm=md5"), file), http.StatusBadRequest, "unknown algorithm"},
		{"no short_pubkey", "block", putBody(withLine(lines, "short_pubkey", ""), file), http.StatusBadRequest, `no "short_pubkey" line`},
		{"no ttl", "ttl", putBody(lines, file), http.StatusBadRequest, "ttl: missing"},
		{"bad ttl", "ttl", putBody(withLine(lines, "ttl", "ttl=soon"), file), http.StatusBadRequest, "ttl:"},
	}
	for i, tc := range tests {
		start := time.Now()
		a := putFrom(t, r, "127.0.0.2", fmt.Sprintf("/shared-files/n1/src/f%d", i), tc.body)
		if a.code != tc.code || !strings.Contains(a.body, tc.say) || time.Since(start) > time.Second {
			t.Errorf("%s with the only slot held: %d %q after %s, want %d saying %q at once", tc.name, a.code, a.body, time.Since(start).Round(time.Millisecond), tc.code, tc.say)
		}
	}
	m := metricsText(t, r)
	for reason, want := range map[string]float64{"key": 1, "block": 2, "ttl": 2} {
		if got := metricValue(t, m, `keel_upload_block_refusals_total{reason="`+reason+`"}`); got != want {
			t.Errorf("keel_upload_block_refusals_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if got := metricValue(t, m, "keel_upload_slots_in_use"); got != 1 {
		t.Errorf("keel_upload_slots_in_use = %v, want 1 (the holder only)", got)
	}
	holder.conn.Close()
}
