package faults

// Hostile and careless uploaders against the real keel-relay binary (issue 12, findings 1, 5
// and 7): pipelined PUTs from a client that half-closes, slow uploads with a bogus digest
// trying to hold every upload slot, a block with the wrong key while the slots are held, a
// declared small upload trickled after a padded block, and a client's hash_value and expires
// lines on their way to the next hop.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/sigblock"
	"github.com/keel-relay/keel/relay/relaytest"
)

// addrOf is host:port of a proc's API.
func addrOf(p *proc) string { return strings.TrimPrefix(p.api, "http://") }

// metric returns the value of one series in the relay's /metrics (-1 when absent).
func metric(t *testing.T, p *proc, series string) float64 {
	t.Helper()
	code, body, err := do(newClient(10*time.Second), http.MethodGet, p.admin+"/metrics", nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics: %q: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// TestHostileHalfClosePipelinedPuts: 100 connections each send "PUT a", "GET /system/info",
// "PUT b" in one write and half-close. Every request gets a real answer, and every PUT a 200
// for a file that is then there with its hash (the relay used to answer about half the second
// PUTs with an empty 200 and store nothing: net/http cancels the request's context on the
// client's EOF, golang/go#18527).
func TestHostileHalfClosePipelinedPuts(t *testing.T) {
	needBinary(t)
	began := time.Now()
	p, src, tgt := slotRelay(t, nil)
	fileA, fileB := content(41, 300), content(42, 200) // the three requests fit net/http's 4 KiB read buffer
	bodyA, bodyB := relaytest.SignedBody(t, src, fileA, "1d"), relaytest.SignedBody(t, src, fileB, "1d")
	client := newClient(10 * time.Second)
	var mu sync.Mutex
	var failures []string
	codes := map[int]int{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range 100 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ids := []string{fmt.Sprintf("a%d", i), "", fmt.Sprintf("b%d", i)}
			answers := relaytest.PipelineHalfClose(addrOf(p),
				relaytest.RawRequest(http.MethodPut, filesPath(tgt.ID, src.ID, ids[0])+"?ttl=1h", bodyA),
				relaytest.RawRequest(http.MethodGet, "/rudder/relay-api/1/system/info", nil),
				relaytest.RawRequest(http.MethodPut, filesPath(tgt.ID, src.ID, ids[2])+"?ttl=1h", bodyB))
			mu.Lock()
			defer mu.Unlock()
			if len(answers) != 3 || answers[len(answers)-1].Err != nil {
				failures = append(failures, fmt.Sprintf("connection %d: %d answers, last %+v", i, len(answers), answers[len(answers)-1]))
			}
			for j, a := range answers {
				if j == 1 || a.Err != nil {
					continue
				}
				codes[a.Code]++
				file := fileA
				if j == 2 {
					file = fileB
				}
				if a.Code != http.StatusOK || strings.TrimSpace(a.Body) != "stored" {
					failures = append(failures, fmt.Sprintf("connection %d, PUT %s: %d %q", i, ids[j], a.Code, a.Body))
					continue
				}
				if code, err := headHash(client, p.api, tgt.ID, src.ID, ids[j], sha256Hex(file)); err != nil || code != http.StatusOK {
					failures = append(failures, fmt.Sprintf("connection %d, PUT %s answered 200, then HEAD: %d %v", i, ids[j], code, err))
				}
			}
		})
	}
	wg.Wait()
	for _, f := range failures[:min(len(failures), 20)] {
		t.Error(f)
	}
	if len(failures) > 20 {
		t.Errorf("... and %d more", len(failures)-20)
	}
	t.Logf("100 half-closed connections of PUT, GET, PUT pipelined: PUT answers %v; took %s", codes, time.Since(began).Round(time.Millisecond))
	p.stop(t)
}

// TestHostileSlowBogusUploads: the attack, 64 uploads at 600 B/s with a bogus digest
// (the source's public key is public), at the default http.max_concurrent_uploads (64).
//   - From one address, they hold that client's share (16), not every slot: a real PUT from
//     another address is stored at once, and a block with a wrong key is refused with 403 at
//     once.
//   - From four addresses, each at its share, they hold every slot: a real PUT waits until
//     the slowest has held its slot for body_idle_timeout, which is then cut with 503 and
//     Retry-After (http.upload_preempt_rate) to make room.
//
// Before, the 64 connections held every slot and a real PUT got 503 after upload_slot_wait.
func TestHostileSlowBogusUploads(t *testing.T) {
	needBinary(t)
	began := time.Now()
	const bodyIdle = 3 * time.Second
	p, src, tgt := slotRelay(t, map[string]string{"http.body_idle_timeout": bodyIdle.String(), "http.upload_slot_wait": "10s"})
	bogus := relaytest.BogusBody(t, src, content(43, 1<<20), "1d")
	attack := func(from func(i int) string, n int, name string) []*relaytest.RawUpload {
		ups := make([]*relaytest.RawUpload, n)
		for i := range ups { // the block at once, then 60 bytes every 100ms: 600 B/s, above min_upload_rate
			ups[i] = relaytest.StartRawUpload(t, addrOf(p), from(i), filesPath(tgt.ID, src.ID, fmt.Sprintf("%s%d", name, i))+"?ttl=1h",
				bogus, relaytest.BlockLen(bogus), 60, 100*time.Millisecond)
		}
		return ups
	}
	realPut := func(from, id string) (relaytest.RawAnswer, []byte) {
		file := content(uint64(len(id)), 8<<10)
		body := relaytest.SignedBody(t, src, file, "1d")
		return relaytest.StartRawUpload(t, addrOf(p), from, filesPath(tgt.ID, src.ID, id)+"?ttl=1h", body, len(body), 1, 0).Wait(t, 30*time.Second), file
	}
	waitSlots := func(held, waiting float64) {
		t.Helper()
		relaytest.Eventually(t, 10*time.Second, fmt.Sprintf("%v slots held and %v uploads waiting", held, waiting), func() bool {
			return metric(t, p, "keel_upload_slots_in_use") == held && metric(t, p, "keel_upload_slots_waiting") == waiting
		})
	}

	// One client.
	oneClient := attack(func(int) string { return "127.0.0.1" }, 64, "bogus")
	waitSlots(16, 48)
	a, file := realPut("127.0.0.2", "real1")
	if a.Code != http.StatusOK || a.After > 2*time.Second {
		t.Errorf("real PUT from another address, 64 bogus uploads from one: %d %q after %s, want 200 at once", a.Code, a.Body, a.After)
	} else if code, err := headHash(newClient(10*time.Second), p.api, tgt.ID, src.ID, "real1", sha256Hex(file)); code != http.StatusOK {
		t.Errorf("HEAD of the real PUT: %d %v", code, err)
	}
	t.Logf("64 bogus uploads at 600 B/s from one address hold %v slots; a real PUT from another address: %d after %s",
		metric(t, p, "keel_upload_slots_in_use"), a.Code, a.After.Round(time.Millisecond))
	wrongKey := relaytest.SignedBody(t, tgt, content(44, 4<<10), "1d") // signed by the target, not the source
	w := relaytest.StartRawUpload(t, addrOf(p), "127.0.0.3", filesPath(tgt.ID, src.ID, "wrong-key")+"?ttl=1h", wrongKey, len(wrongKey), 1, 0).Wait(t, 30*time.Second)
	if w.Code != http.StatusForbidden || w.After > 2*time.Second {
		t.Errorf("PUT with a wrong key: %d %q after %s, want 403 at once", w.Code, w.Body, w.After)
	}
	for _, u := range oneClient {
		u.Conn.Close()
	}
	waitSlots(0, 0)

	// Four clients, 16 each: every slot held. A real PUT preempts the slowest holder.
	var many []*relaytest.RawUpload
	for c := range 4 {
		many = append(many, attack(func(int) string { return fmt.Sprintf("127.0.2.%d", c+1) }, 16, fmt.Sprintf("bogus-c%d-", c))...)
	}
	waitSlots(64, 0)
	a, _ = realPut("127.0.0.2", "real2")
	if a.Code != http.StatusOK || a.After > bodyIdle+3*time.Second {
		t.Errorf("real PUT with every slot held by bogus uploads from 4 addresses: %d %q after %s, want 200 within about body_idle_timeout (%s)", a.Code, a.Body, a.After, bodyIdle)
	}
	w = relaytest.StartRawUpload(t, addrOf(p), "127.0.0.3", filesPath(tgt.ID, src.ID, "wrong-key")+"?ttl=1h", wrongKey, len(wrongKey), 1, 0).Wait(t, 30*time.Second)
	if w.Code != http.StatusForbidden || w.After > 2*time.Second {
		t.Errorf("PUT with a wrong key, every slot held: %d %q after %s, want 403 at once", w.Code, w.Body, w.After)
	}
	cut := 0
	for _, u := range many {
		select {
		case c := <-u.Answer:
			cut++
			if c.Code != http.StatusServiceUnavailable || c.Header.Get("Retry-After") == "" {
				t.Errorf("a cut bogus upload: %d %q, want 503 with Retry-After", c.Code, c.Body)
			}
		default:
		}
		u.Conn.Close()
	}
	if cut != 1 || metric(t, p, "keel_upload_preempted_total") != 1 {
		t.Errorf("%d bogus uploads answered, keel_upload_preempted_total %v; want 1 cut for the one real PUT", cut, metric(t, p, "keel_upload_preempted_total"))
	}
	t.Logf("64 bogus uploads at 600 B/s from 4 addresses hold every slot; a real PUT: %d after %s (body_idle_timeout %s), %d bogus upload cut",
		a.Code, a.After.Round(time.Millisecond), bodyIdle, cut)
	if n := metric(t, p, `keel_upload_block_refusals_total{reason="key"}`); n != 2 {
		t.Errorf(`keel_upload_block_refusals_total{reason="key"} = %v, want 2`, n)
	}
	p.stop(t)
	t.Logf("slow bogus uploads test took %s", time.Since(began).Round(time.Millisecond))
}

// TestHostileSlotDeclaredSize: an upload that declares a 1 KiB body after a block padded to
// 60 KiB, then trickles its body a byte every 500ms, is cut with 408 within body_idle_timeout
// + 1 KiB / min_upload_rate of taking its slot: the block's bytes buy it no slot time (before,
// they did: about two minutes at 512 B/s).
func TestHostileSlotDeclaredSize(t *testing.T) {
	needBinary(t)
	const bodyIdle = 2 * time.Second
	p, src, tgt := slotRelay(t, map[string]string{"http.body_idle_timeout": bodyIdle.String()})
	file := content(45, 1024)
	signed, err := sigblock.Sign(src.Key, "sha256", bytes.NewReader(file), src.Hostname, "2026-01-01", "TEST", "1d")
	if err != nil {
		t.Fatal(err)
	}
	body := append(append(bytes.Clone(signed.Raw), "pad="+strings.Repeat("x", 60<<10)+"\n\n"...), file...)
	u := relaytest.StartRawUpload(t, addrOf(p), "127.0.0.1", filesPath(tgt.ID, src.ID, "padded")+"?ttl=1h", body, relaytest.BlockLen(body), 1, 500*time.Millisecond)
	deadline := bodyIdle + time.Duration(len(file))*time.Second/512
	a := u.Wait(t, deadline+10*time.Second)
	if a.Code != http.StatusRequestTimeout || a.After > deadline+2*time.Second {
		t.Errorf("a declared 1 KiB body trickled after a 60 KiB block: %d %q after %s, want 408 by %s", a.Code, a.Body, a.After, deadline)
	}
	t.Logf("declared 1 KiB, trickled after a 60 KiB block: %d after %s (body_idle_timeout %s + 1 KiB at 512 B/s = %s)", a.Code, a.After.Round(time.Millisecond), bodyIdle, deadline)
	p.stop(t)
}

// TestHostileClientLines: a block with a wrong hash_value and an expires line reaches the
// upstream, through a relay that queued it, with the relay's hash_value and expires.
func TestHostileClientLines(t *testing.T) {
	needBinary(t)
	received := make(chan []byte, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err == nil {
			select {
			case received <- b:
			default:
			}
		}
	}))
	defer upstream.Close()
	dir := t.TempDir()
	src := relaytest.NewNode("src", "relay1", 1)
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(src))
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := baseSettings("relay1", filepath.Join(dir, "data"), nodes, api, admin)
	s["role"], s["upstream"] = "relay", upstream.URL
	p := startRelay(t, "relay", writeConfig(t, dir, "relay.yaml", s), api, admin)

	file := content(46, 5000)
	signed, err := sigblock.Sign(src.Key, "sha256", bytes.NewReader(file), src.Hostname, "2026-01-01", "TEST", "")
	if err != nil {
		t.Fatal(err)
	}
	raw := strings.Replace(string(signed.Raw), "hash_value="+signed.HashValue, "hash_value="+sha256Hex([]byte("lie"))+"\nexpires=99999999999", 1)
	code, b, err := do(newClient(10*time.Second), http.MethodPut, filesURL(p.api, "elsewhere", src.ID, "f")+"?ttl=1h", append([]byte(raw+"\n"), file...))
	if err != nil || code != http.StatusOK {
		t.Fatalf("PUT: %d %s %v", code, b, err)
	}
	var got []byte
	select {
	case got = <-received:
	case <-time.After(15 * time.Second):
		t.Fatal("nothing reached the upstream")
	}
	block, err := sigblock.Read(bufio.NewReader(bytes.NewReader(got)))
	if err != nil {
		t.Fatalf("the upstream received %q: %v", got, err)
	}
	var expires string
	for _, f := range block.Fields {
		if f.Key == "expires" {
			expires = f.Value
		}
	}
	exp, err := strconv.ParseInt(expires, 10, 64)
	if block.HashValue != sha256Hex(file) || err != nil || time.Until(time.Unix(exp, 0)) > time.Hour || time.Until(time.Unix(exp, 0)) < 50*time.Minute {
		t.Errorf("the upstream received hash_value %s and expires %q, want %s and about an hour from now:\n%s", block.HashValue, expires, sha256Hex(file), block.Raw)
	}
	t.Logf("block received upstream:\n%s", block.Raw)
	p.stop(t)
}
