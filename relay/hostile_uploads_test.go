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
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/sigblock"
	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/relaytest"
	"github.com/keel-relay/keel/storage"
)

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
			answers := relaytest.PipelineHalfClose(r.APIAddr().String(),
				relaytest.RawRequest(http.MethodPut, pathA, bodyA),
				relaytest.RawRequest(http.MethodGet, "/rudder/relay-api/1/system/info", nil),
				relaytest.RawRequest(http.MethodPut, pathB, bodyB))
			for j, a := range answers {
				if a.Err != nil {
					fail("connection %d: %d answers, then %v", i, j, a.Err)
					continue
				}
				if j == 1 {
					continue // system/info
				}
				path, file := pathA, fileA
				if j == 2 {
					path, file = pathB, fileB
				}
				// Every answer is a real one: a status with a body that says what happened.
				if a.Body == "" {
					fail("connection %d, PUT %s: %d with an empty body", i, path, a.Code)
				}
				if a.Code/100 != 2 {
					// A refusal is honest only if nothing was stored; with free slots and a
					// whole body there is no reason to refuse at all.
					fail("connection %d, PUT %s: %d %q with free upload slots", i, path, a.Code, a.Body)
					continue
				}
				key := strings.TrimSuffix(path, "?ttl=1h")
				if h, err := tryDo(http.MethodHead, r.URL+key+"?hash="+sha256hex(file), nil, nil); err != nil || h.code != http.StatusOK {
					fail("connection %d, PUT %s answered %d %q, then HEAD: %d %v (nothing stored)", i, path, a.Code, a.Body, h.code, err)
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

// putFrom sends a whole PUT from the loopback address from and returns the answer.
func putFrom(t testing.TB, r *relaytest.Relay, from, path string, body []byte) relaytest.RawAnswer {
	t.Helper()
	return relaytest.StartRawUpload(t, r.APIAddr().String(), from, path, body, len(body), 1, 0).Wait(t, 30*time.Second)
}

// slowUpload starts a PUT from the loopback address from: the first n bytes at once, then
// piece bytes every pace.
func slowUpload(t testing.TB, r *relaytest.Relay, from, path string, body []byte, n, piece int, pace time.Duration) *relaytest.RawUpload {
	t.Helper()
	return relaytest.StartRawUpload(t, r.APIAddr().String(), from, path, body, n, piece, pace)
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
	bogus := relaytest.BogusBody(t, src, content(1<<20, 31), "1d")
	blockLen := relaytest.BlockLen(bogus)
	var attackers []*relaytest.RawUpload
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
	if a.Code != http.StatusOK || time.Since(start) > time.Second {
		t.Errorf("a real PUT from another client, with one client's 16 slow bogus uploads in progress: %d %q after %s, want 200 at once",
			a.Code, a.Body, time.Since(start).Round(time.Millisecond))
	}
	// The attacker's own next upload waits behind its share.
	a = putFrom(t, r, "127.0.0.1", "/shared-files/n1/src/same-client?ttl=1h", relaytest.SignedBody(t, src, file, ""))
	if a.Code != http.StatusServiceUnavailable || a.Header.Get("Retry-After") == "" || !strings.Contains(a.Body, "http.max_uploads_per_client") {
		t.Errorf("a PUT from the client at its share: %d (Retry-After %q) %q, want 503 naming http.max_uploads_per_client", a.Code, a.Header.Get("Retry-After"), a.Body)
	}
	for _, u := range attackers {
		u.Conn.Close()
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
	bogus := relaytest.BogusBody(t, src, content(1<<20, 31), "1d")
	blockLen := relaytest.BlockLen(bogus)
	var attackers []*relaytest.RawUpload
	for i := range 4 { // 1 KiB/s each, from 4 addresses
		attackers = append(attackers, slowUpload(t, r, fmt.Sprintf("127.0.1.%d", i+1), fmt.Sprintf("/shared-files/n1/src/bogus%d?ttl=1h", i), bogus, blockLen, 100, 100*time.Millisecond))
	}
	waitFor(t, "the attackers to hold every slot", 5*time.Second, func() bool {
		return metricValue(t, metricsText(t, r), "keel_upload_slots_in_use") == 4
	})
	start := time.Now()
	a := putFrom(t, r, "127.0.0.2", "/shared-files/n1/src/real?ttl=1h", relaytest.SignedBody(t, src, content(4000, 33), ""))
	if took := time.Since(start); a.Code != http.StatusOK || took > bodyIdle+2*time.Second {
		t.Errorf("a real PUT with every slot held by slow bogus uploads: %d %q after %s, want 200 within about body_idle_timeout (%s)", a.Code, a.Body, took.Round(time.Millisecond), bodyIdle)
	}
	cut := 0
	for _, u := range attackers {
		select {
		case a := <-u.Answer:
			if a.Code != http.StatusServiceUnavailable || a.Header.Get("Retry-After") == "" || !strings.Contains(a.Body, "upload_preempt_rate") {
				t.Errorf("a cut upload: %d (Retry-After %q) %q %v, want 503 with Retry-After", a.Code, a.Header.Get("Retry-After"), a.Body, a.Err)
			}
			cut++
		case <-time.After(100 * time.Millisecond):
		}
		u.Conn.Close()
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
	blockLen := relaytest.BlockLen(body)
	// The block at once, then the 1 KiB body a byte every 500ms: never idle, far below the rate.
	u := slowUpload(t, r, "127.0.0.1", "/shared-files/n1/src/padded?ttl=1h", body, blockLen, 1, 500*time.Millisecond)
	deadline := bodyIdle + time.Duration(len(file))*time.Second/512 // 3s
	select {
	case a := <-u.Answer:
		if a.Code != http.StatusRequestTimeout || a.After > deadline+2*time.Second {
			t.Errorf("upload of a declared 1 KiB body trickled after a 60 KiB block: %d %q after %s, want 408 by %s", a.Code, a.Body, a.After.Round(time.Millisecond), deadline)
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
	holder := slowUpload(t, r, "127.0.0.3", "/shared-files/n1/src/held?ttl=1h", held, relaytest.BlockLen(held), 1000, 100*time.Millisecond)
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
		if a.Code != tc.code || !strings.Contains(a.Body, tc.say) || time.Since(start) > time.Second {
			t.Errorf("%s with the only slot held: %d %q after %s, want %d saying %q at once", tc.name, a.Code, a.Body, time.Since(start).Round(time.Millisecond), tc.code, tc.say)
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
	holder.Conn.Close()
}

// TestPipelinedHalfCloseHead: a HEAD for a file below a sub-relay, pipelined after another
// request by a client that half-closes, is asked of the sub-relay and answered 200: net/http
// has cancelled the request's context by then (the client's EOF), which used to cut the
// question to the next hop short and answer 502.
func TestPipelinedHalfCloseHead(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	sub := relaytest.NewNode("sub", "root", 0)
	n3 := relaytest.NewNode("n3", "sub", 2)
	n4 := relaytest.NewNode("n4", "sub", 3)
	s := startRelay(t, "sub", relaytest.NodeMap(sub, n3, n4), func(c *config.Config) {
		c.Role = config.RoleRelay
		c.Upstream = "http://" + relaytest.DownAddr(t)
	})
	sub.Hostname = s.APIAddr().String()
	r := startRelay(t, "root", relaytest.NodeMap(root, sub, n3, n4), nil)
	file := content(1000, 24)
	if a := put(t, s, "/shared-files/n3/n4/f?ttl=1h", relaytest.SignedBody(t, n4, file, "")); a.code != http.StatusOK {
		t.Fatalf("PUT on the sub-relay: %d %s", a.code, a.body)
	}
	for i := range 20 {
		answers := relaytest.PipelineHalfClose(r.APIAddr().String(),
			relaytest.RawRequest(http.MethodGet, "/rudder/relay-api/1/system/info", nil),
			relaytest.RawRequest(http.MethodHead, "/shared-files/n3/n4/f?hash="+sha256hex(file), nil))
		if last := answers[len(answers)-1]; len(answers) != 2 || last.Code != http.StatusOK {
			t.Fatalf("try %d: HEAD via the root after a half-close: %+v, want 200 from the sub-relay", i, last)
		}
	}
}

// TestDrainAnswersWaitingUploads: when the relay begins to drain, an upload waiting for a slot
// is answered 503 with Retry-After at once, not at the end of the grace period; the upload in
// its slot goes on.
func TestDrainAnswersWaitingUploads(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), func(c *config.Config) {
		c.HTTP.MaxConcurrentUploads = 1
		c.HTTP.UploadSlotWait = time.Minute
		c.HTTP.BodyIdleTimeout = 5 * time.Second
		c.ShutdownGrace = 10 * time.Second
	})
	holderBody := relaytest.SignedBody(t, src, content(64<<10, 41), "1h")
	holder := slowUpload(t, r, "127.0.0.1", "/shared-files/n1/src/holder", holderBody, relaytest.BlockLen(holderBody), 8<<10, 300*time.Millisecond)
	waitFor(t, "the holder to take the slot", 5*time.Second, func() bool {
		return metricValue(t, metricsText(t, r), "keel_upload_slots_in_use") == 1
	})
	waiterBody := relaytest.SignedBody(t, src, content(1000, 42), "1h")
	waiter := slowUpload(t, r, "127.0.0.2", "/shared-files/n1/src/waiter", waiterBody, len(waiterBody), 1, time.Hour)
	waitFor(t, "the second upload to wait", 5*time.Second, func() bool {
		return metricValue(t, metricsText(t, r), "keel_upload_slots_waiting") == 1
	})
	stopped := make(chan error, 1)
	start := time.Now()
	go func() { stopped <- r.Stop() }()
	a := waiter.Wait(t, 5*time.Second)
	if a.Code != http.StatusServiceUnavailable || a.Header.Get("Retry-After") == "" || !strings.Contains(a.Body, "stopping") || time.Since(start) > 2*time.Second {
		t.Errorf("waiting upload at drain: %d (Retry-After %q) %q after %s, want 503 saying the relay is stopping, at once",
			a.Code, a.Header.Get("Retry-After"), a.Body, time.Since(start).Round(time.Millisecond))
	}
	if h := holder.Wait(t, 15*time.Second); h.Code != http.StatusOK {
		t.Errorf("the upload in its slot during the drain: %d %q, want 200", h.Code, h.Body)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Stop: %v", err)
	}
}
