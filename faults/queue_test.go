package faults

import (
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// deliveryProxy sits between a sub-relay and its upstream on loopback. It counts, per path,
// the PUTs it passes on and the 2xx answers of the upstream, tagged with the incarnation of
// the sub-relay that sent them. While closed it answers 503 without passing anything on.
type deliveryProxy struct {
	*httptest.Server
	open  atomic.Bool
	epoch atomic.Int32 // incarnation of the sub-relay: incremented at each kill

	mu    sync.Mutex
	files map[string]*deliveries
	ok    int // 2xx answers, all paths
}

// deliveries are the attempts the proxy passed on for one path.
type deliveries struct {
	first, last int32 // incarnations of the first and last attempt
	attempts    int
	delivered   int // 2xx from the upstream
}

func newDeliveryProxy(t *testing.T, upstream string) *deliveryProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // an upstream that is down is part of the tests
	rp.Transport = newClient(0).Transport
	p := &deliveryProxy{files: map[string]*deliveries{}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			rp.ServeHTTP(w, r)
			return
		}
		if !p.open.Load() {
			http.Error(w, "upstream closed by the test", http.StatusServiceUnavailable)
			return
		}
		epoch := p.epoch.Load()
		p.mu.Lock()
		d := p.files[r.URL.Path]
		if d == nil {
			d = &deliveries{first: epoch}
			p.files[r.URL.Path] = d
		}
		d.last = epoch
		d.attempts++
		p.mu.Unlock()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		rp.ServeHTTP(rec, r)
		if rec.code >= 200 && rec.code < 300 {
			p.mu.Lock()
			d.delivered++
			p.ok++
			p.mu.Unlock()
		}
	}))
	t.Cleanup(p.Close)
	return p
}

// delivered returns the number of 2xx answers so far, all paths.
func (p *deliveryProxy) delivered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok
}

// get returns a copy of the counts of path.
func (p *deliveryProxy) get(path string) deliveries {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.files[path]; d != nil {
		return *d
	}
	return deliveries{}
}

// statusRecorder remembers the status code of a response.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// forwardSetup is a root relay and a sub-relay (relay1) whose upstream is the root behind a
// deliveryProxy. Files sent at relay1 by node a for node b (a node of the root, unknown to
// relay1) are queued by relay1 for its upstream.
type forwardSetup struct {
	dir             string
	root, sub       *proc
	proxy           *deliveryProxy
	subCfg          string
	subAPI, subAdm  string
	rootCfg         string
	rootAPI, rootAd string
	a, b            *relaytest.Node
}

func newForwardSetup(t *testing.T, subSettings settings) *forwardSetup {
	t.Helper()
	fs := &forwardSetup{dir: t.TempDir()}
	rootN := relaytest.NewNode("root", "root", 0)
	relay1 := relaytest.NewNode("relay1", "root", 1)
	fs.a = relaytest.NewNode("a", "relay1", 2)
	fs.b = relaytest.NewNode("b", "root", 3)
	rootNodes := filepath.Join(fs.dir, "root-nodes.json")
	relaytest.WriteFileAtomic(t, rootNodes, relaytest.NodeMap(rootN, relay1, fs.a, fs.b))
	subNodes := filepath.Join(fs.dir, "relay1-nodes.json")
	relaytest.WriteFileAtomic(t, subNodes, relaytest.NodeMap(relay1, fs.a))

	fs.rootAPI, fs.rootAd = relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	fs.rootCfg = writeConfig(t, fs.dir, "root.yaml", baseSettings("root", filepath.Join(fs.dir, "root-data"), rootNodes, fs.rootAPI, fs.rootAd))
	fs.root = startRelay(t, "root", fs.rootCfg, fs.rootAPI, fs.rootAd)
	fs.proxy = newDeliveryProxy(t, "http://"+fs.rootAPI)

	fs.subAPI, fs.subAdm = relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := baseSettings("relay1", filepath.Join(fs.dir, "relay1-data"), subNodes, fs.subAPI, fs.subAdm)
	s["role"] = "relay"
	s["upstream"] = fmt.Sprintf("%q", fs.proxy.URL)
	for k, v := range subSettings {
		s[k] = v
	}
	fs.subCfg = writeConfig(t, fs.dir, "relay1.yaml", s)
	fs.sub = startRelay(t, "relay1", fs.subCfg, fs.subAPI, fs.subAdm)
	return fs
}

// queued is a file sent at the sub-relay.
type queued struct {
	id   string
	hash string
}

// queueFiles sends n files (1 KiB to 1 MiB) at the sub-relay, 8 at a time, and requires a
// 200 for each.
func (fs *forwardSetup) queueFiles(t *testing.T, rng *rand.Rand, prefix string, n int) []queued {
	t.Helper()
	files := make([]queued, n)
	bodies := make([][]byte, n)
	for i := range files {
		c := content(rng.Uint64(), logUniform(rng, 1<<10, 1<<20))
		files[i] = queued{id: fmt.Sprintf("%s-f%03d", prefix, i), hash: sha256Hex(c)}
		bodies[i] = relaytest.SignedBody(t, fs.a, c, "1d")
	}
	client := newClient(time.Minute)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				code, body, err := do(client, http.MethodPut, filesURL(fs.sub.api, fs.b.ID, fs.a.ID, files[i].id), bodies[i])
				if err != nil || code != http.StatusOK {
					t.Errorf("PUT %s at relay1: %d %s %v", files[i].id, code, body, err)
				}
			}
		})
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return files
}

// requireAtRoot checks that the root holds every file with its hash.
func (fs *forwardSetup) requireAtRoot(t *testing.T, files []queued) {
	t.Helper()
	client := newClient(30 * time.Second)
	for _, f := range files {
		if code, err := headHash(client, fs.root.api, fs.b.ID, fs.a.ID, f.id, f.hash); err != nil || code != http.StatusOK {
			t.Fatalf("%s not at the root with its hash: HEAD %d %v", f.id, code, err)
		}
	}
}

// TestKill9DuringDelivery: 20 rounds. Each round queues 100 files at the sub-relay while its
// upstream is closed, opens it, kills the sub-relay with SIGKILL after a random number of
// deliveries, and restarts it. Every file reaches the root with its hash, the queue empties,
// and the duplicates stay within the at-least-once contract of the package documentation.
func TestKill9DuringDelivery(t *testing.T) {
	needBinary(t)
	const rounds, perRound = 20, 100
	began := time.Now()
	fs := newForwardSetup(t, settings{"forward.min_backoff": "20ms", "forward.max_backoff": "200ms"})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	var all []queued
	for round := range rounds {
		roundStart := time.Now()
		fs.proxy.open.Store(false)
		files := fs.queueFiles(t, rng, fmt.Sprintf("r%02d", round), perRound)
		if q := status(t, fs.sub.api).QueueDepth; q != perRound {
			t.Fatalf("round %d: queue_depth %d with the upstream closed, want %d", round, q, perRound)
		}
		base := fs.proxy.delivered()
		fs.proxy.open.Store(true)
		killAfter := 1 + rng.IntN(perRound*95/100)
		relaytest.Eventually(t, 30*time.Second, fmt.Sprintf("round %d: %d deliveries", round, killAfter), func() bool {
			return fs.proxy.delivered()-base >= killAfter
		})
		time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond)
		fs.sub.kill9(t)
		fs.proxy.epoch.Add(1)
		atKill := fs.proxy.delivered() - base

		fs.sub = startRelay(t, fmt.Sprintf("relay1 (restart %d)", round+1), fs.subCfg, fs.subAPI, fs.subAdm)
		left := status(t, fs.sub.api).QueueDepth
		relaytest.Eventually(t, 60*time.Second, fmt.Sprintf("round %d: relay1's queue is empty", round), func() bool {
			return status(t, fs.sub.api).QueueDepth == 0
		})
		fs.requireAtRoot(t, files)
		all = append(all, files...)
		t.Logf("round %2d: killed after %d deliveries, %d jobs queued after the restart; round took %s",
			round, atKill, left, time.Since(roundStart).Round(time.Millisecond))
	}

	// Longer than max_backoff: a late duplicate would have come by now.
	time.Sleep(500 * time.Millisecond)
	if q := status(t, fs.sub.api).QueueDepth; q != 0 {
		t.Fatalf("relay1 queue_depth %d at the end, want 0", q)
	}
	dups, inFlight := 0, 0
	for _, f := range all {
		d := fs.proxy.get(filesPath(fs.b.ID, fs.a.ID, f.id))
		kills := int(d.last - d.first)
		if kills > 0 {
			inFlight++
		}
		if d.delivered < 1 || d.delivered > 1+kills {
			t.Errorf("%s delivered %d times (%d attempts, incarnations %d to %d): want 1 to %d",
				f.id, d.delivered, d.attempts, d.first, d.last, 1+kills)
		}
		dups += max(0, d.delivered-1)
	}
	fs.sub.stop(t)
	t.Logf("%d rounds, %d files: %d duplicate deliveries; %d files were in flight at a kill; %s",
		rounds, len(all), dups, inFlight, time.Since(began).Round(time.Millisecond))
}

// retryLine is a sub-relay log line about a failed delivery.
var retryLine = regexp.MustCompile(`msg="forward failed; will retry".* attempt=(\d+) .*retry_in=(\S+)`)

// TestUpstreamDownThenBack: the root is down for a while; the sub-relay keeps accepting
// files (200, queued), its retries back off exponentially up to forward.max_backoff, and once
// the root is back every file is delivered, exactly once.
func TestUpstreamDownThenBack(t *testing.T) {
	needBinary(t)
	const files = 200
	const minBackoff, maxBackoff = 100 * time.Millisecond, 2 * time.Second
	began := time.Now()
	fs := newForwardSetup(t, settings{"forward.min_backoff": "100ms", "forward.max_backoff": "2s"})
	fs.proxy.open.Store(true)
	fs.root.stop(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	queuedAt := time.Now()
	sent := fs.queueFiles(t, rng, "down", files)
	t.Logf("%d files queued with the root down in %s", files, time.Since(queuedAt).Round(time.Millisecond))
	if q := status(t, fs.sub.api).QueueDepth; q != files {
		t.Fatalf("queue_depth %d with the root down, want %d", q, files)
	}
	time.Sleep(6 * time.Second)

	// Every retry delay is within the backoff bounds of its attempt, and they reach the cap.
	var longest time.Duration
	retries := 0
	for _, m := range retryLine.FindAllStringSubmatch(fs.sub.out.String(), -1) {
		attempt, _ := strconv.Atoi(m[1])
		delay, err := time.ParseDuration(m[2])
		if err != nil || attempt < 1 {
			t.Fatalf("unreadable retry line: %q", m[0])
		}
		retries++
		want := minBackoff
		for i := 1; i < attempt && want < maxBackoff; i++ {
			want *= 2
		}
		want = min(want, maxBackoff)
		if delay < want/2-time.Millisecond || delay > want+time.Millisecond {
			t.Errorf("attempt %d retried in %s, want %s to %s", attempt, delay, want/2, want)
		}
		longest = max(longest, delay)
	}
	if longest < maxBackoff/2 {
		t.Errorf("the longest retry delay is %s: the backoff did not grow to the cap of %s", longest, maxBackoff)
	}
	// Without backoff, 200 jobs retried every 100ms for 6s would make about 12,000 attempts.
	if retries == 0 || retries > files*12 {
		t.Errorf("%d retries for %d files in 6s: want some, and at most %d", retries, files, files*12)
	}
	t.Logf("root down 6s: %d failed attempts for %d files, longest retry delay %s", retries, files, longest)

	back := time.Now()
	fs.root = startRelay(t, "root (restarted)", fs.rootCfg, fs.rootAPI, fs.rootAd)
	relaytest.Eventually(t, 30*time.Second, "relay1's queue is empty", func() bool { return status(t, fs.sub.api).QueueDepth == 0 })
	drained := time.Since(back)
	fs.requireAtRoot(t, sent)
	time.Sleep(500 * time.Millisecond)
	for _, f := range sent {
		if d := fs.proxy.get(filesPath(fs.b.ID, fs.a.ID, f.id)); d.delivered != 1 {
			t.Errorf("%s delivered %d times, want exactly 1 (no kill)", f.id, d.delivered)
		}
	}
	fs.sub.stop(t)
	t.Logf("root back: the %d files delivered in %s; test took %s", files, drained.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
