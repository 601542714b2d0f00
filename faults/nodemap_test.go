package faults

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// load sends PUT then HEAD of small files from several clients until ctx ends, and counts
// the requests and the failures (anything but 200).
type load struct {
	ops, failures atomic.Int64
	mu            sync.Mutex
	firstFailure  string
}

func (l *load) run(ctx context.Context, t *testing.T, base string, src, tgt *relaytest.Node, workers int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range workers {
		bodies := make([][]byte, 4)
		hashes := make([]string, len(bodies))
		for i := range bodies {
			c := content(uint64(100*w+i), 2<<10)
			bodies[i], hashes[i] = relaytest.SignedBody(t, src, c, "1d"), sha256Hex(c)
		}
		wg.Go(func() {
			client := newClient(10 * time.Second)
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("load%d-%d", w, i%len(bodies))
				url := filesURL(base, tgt.ID, src.ID, id)
				code, body, err := do(client, http.MethodPut, url, bodies[i%len(bodies)])
				l.record(fmt.Sprintf("PUT %s", id), code, body, err)
				code, body, err = do(client, http.MethodHead, url+"?hash="+hashes[i%len(bodies)], nil)
				l.record(fmt.Sprintf("HEAD %s", id), code, body, err)
			}
		})
	}
	return &wg
}

func (l *load) record(what string, code int, body []byte, err error) {
	l.ops.Add(1)
	if err == nil && code == http.StatusOK {
		return
	}
	l.failures.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.firstFailure == "" {
		l.firstFailure = fmt.Sprintf("%s: %d %s %v", what, code, strings.TrimSpace(string(body)), err)
	}
}

// TestNodeMapGarbage replaces the node map file, under a steady PUT/HEAD load, with garbage,
// with an empty file, and with a map that has a cycle, each time also asking for a reload:
// the map in force stays (same nodes, same digest), no request fails, and /system/status
// shows the error until a good map is back. A restart with a garbage file routes with the
// last good map, kept in the store.
func TestNodeMapGarbage(t *testing.T) {
	needBinary(t)
	began := time.Now()
	dir := t.TempDir()
	rootN := relaytest.NewNode("root", "root", 0)
	src := relaytest.NewNode("src", "root", 1)
	tgt := relaytest.NewNode("tgt", "root", 2)
	good := relaytest.NodeMap(rootN, src, tgt)
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, good)
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := baseSettings("root", filepath.Join(dir, "data"), nodes, api, admin)
	s["nodes_poll_interval"] = "100ms"
	cfg := writeConfig(t, dir, "relay.yaml", s)
	p := startRelay(t, "relay", cfg, api, admin)
	want := status(t, p.api).NodeMap
	if want.Nodes != 3 || want.LastError != "" {
		t.Fatalf("node map at start: %+v", want)
	}

	// A cycle: x's policy server is y and y's is x.
	var cyclic map[string]map[string]string
	if err := json.Unmarshal(good, &cyclic); err != nil {
		t.Fatal(err)
	}
	cyclic["x"] = map[string]string{"hostname": "x.example.test", "policy-server": "y", "key-hash": rootN.Pin()}
	cyclic["y"] = map[string]string{"hostname": "y.example.test", "policy-server": "x", "key-hash": rootN.Pin()}
	cycle, err := json.Marshal(cyclic)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 4096)
	_, _ = rand.Read(garbage)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var l load
	wg := l.run(ctx, t, p.api, src, tgt, 4)
	time.Sleep(300 * time.Millisecond)

	reload := func() (int, string) {
		code, body, err := do(newClient(10*time.Second), http.MethodPost, p.api+"/rudder/relay-api/1/system/reload", nil)
		if err != nil {
			t.Fatalf("reload: %v", err)
		}
		return code, string(body)
	}
	for _, c := range []struct {
		name    string
		data    []byte
		inPlace bool   // rewritten in place (truncate, then write) instead of renamed over
		errHas  string // in last_error
	}{
		{"random bytes, renamed over", garbage, false, "node map"},
		{"random bytes, written in place", garbage[:1000], true, "node map"},
		{"0 bytes (truncated)", nil, true, "node map"},
		{"a cycle", cycle, false, "cycle"},
	} {
		if c.inPlace {
			if err := os.WriteFile(nodes, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			relaytest.WriteFileAtomic(t, nodes, c.data)
		}
		var got string
		relaytest.Eventually(t, 5*time.Second, c.name+": status shows the refused map", func() bool {
			got = status(t, p.api).NodeMap.LastError
			return got != ""
		})
		if !strings.Contains(got, c.errHas) {
			t.Errorf("%s: last_error %q, want it to mention %q", c.name, got, c.errHas)
		}
		if code, body := reload(); code != http.StatusInternalServerError || !strings.HasPrefix(body, `{"result":"error","action":"reloadConfiguration","errorDetails":`) {
			t.Errorf("%s: POST reload: %d %s, want 500 and relayd's error answer", c.name, code, body)
		}
		if m := status(t, p.api).NodeMap; m.Nodes != want.Nodes || m.Digest != want.Digest {
			t.Fatalf("%s: the map in force changed: %+v, want %+v", c.name, m, want)
		}
		t.Logf("%s: refused, last_error %q", c.name, got)
		relaytest.WriteFileAtomic(t, nodes, good)
		relaytest.Eventually(t, 5*time.Second, c.name+": the good map is back, the error cleared", func() bool {
			return status(t, p.api).NodeMap.LastError == ""
		})
	}
	cancel()
	wg.Wait()
	if n := l.failures.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed while the node map was garbage; first: %s", n, l.ops.Load(), l.firstFailure)
	}
	t.Logf("load: %d requests, none failed", l.ops.Load())

	// A restart with a garbage file: the last good map, kept in the store, routes.
	p.stop(t)
	relaytest.WriteFileAtomic(t, nodes, garbage)
	p = startRelay(t, "relay (restarted)", cfg, api, admin)
	st := status(t, p.api).NodeMap
	if st.Nodes != want.Nodes || st.Digest != want.Digest || st.LastError == "" {
		t.Fatalf("restarted with a garbage node map: %+v, want the last good map (%d nodes, digest %s) and an error", st, want.Nodes, want.Digest)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var l2 load
	l2.run(ctx, t, p.api, src, tgt, 2).Wait()
	if n := l2.failures.Load(); n > 0 || l2.ops.Load() == 0 {
		t.Fatalf("after a restart with a garbage node map: %d of %d requests failed; first: %s", n, l2.ops.Load(), l2.firstFailure)
	}
	p.stop(t)
	t.Logf("restart with a garbage file: %d requests served with the kept map; test took %s", l2.ops.Load(), time.Since(began).Round(time.Millisecond))
}
