//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const boxSection = "Relay box: agents' inventories and reports (SPEC-relay-box.md)"

// boxUploadSize is the content size of a benchmark upload: a compressed inventory or report
// is a few KiB.
const boxUploadSize = 4 << 10

// box measures agents' uploads on a relay (role relay) whose upstream is down: inventory
// updates and reports PUT from 16 clients with HTTP Basic against a bcrypt htpasswd entry,
// against signed shared-file PUTs of the same size from 16 clients on the same relay; the
// relay's RSS while they all wait; then, the upstream (a recording server of this program)
// up, their delivery rate.
func (b *bench) box(ctx context.Context) error {
	n := b.p.boxUploads
	dir, err := b.newDir("", "box")
	if err != nil {
		return err
	}
	const user, pass = "rudder", "box-bench-password"
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("bcrypt: %w", err)
	}
	entry := []byte(user + ":$2y$" + string(hash[4:]) + "\n") // Apache's htpasswd -B writes $2y$
	for _, f := range []string{"htpasswd-webdav-initial", "htpasswd-webdav"} {
		if err := os.WriteFile(filepath.Join(dir, f), entry, 0o600); err != nil {
			return fmt.Errorf("htpasswd: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "upstream-password"), []byte("upstream\n"), 0o600); err != nil {
		return fmt.Errorf("upstream password: %w", err)
	}
	upAddr, err := freeAddr()
	if err != nil {
		return err
	}
	up := &boxUpstream{}
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	cfg := relayConfig{dir: dir, nodes: b.fleet.nodeMap(b.p.boxNodes), maxUploads: putClients, extra: fmt.Sprintf(
		"role: relay\nupstream: %s\nforward:\n  allow_http: true\n  min_backoff: 100ms\n  max_backoff: 1s\n"+
			"agent_uploads:\n  htpasswd_initial: %s\n  htpasswd: %s\n  max_waiting: %d\n"+
			"upstream_auth:\n  password_file: %s\n  default_password_file: %s\n",
		q("http://"+upAddr), q(filepath.Join(dir, "htpasswd-webdav-initial")), q(filepath.Join(dir, "htpasswd-webdav")), 2*n+100,
		q(filepath.Join(dir, "upstream-password")), q(filepath.Join(dir, "upstream-password")))}
	p, err := startRelay(ctx, b.log, b.relay, cfg)
	if err != nil {
		return err
	}
	defer p.stop()
	rest, err := processMemory(p.pid())
	if err != nil {
		return err
	}

	// The baseline: signed shared-file PUTs of the same size, 16 clients, the same relay.
	small, _, err := b.fleet.body(nodeID(0), b.randomContent(boxUploadSize))
	if err != nil {
		return err
	}
	base, err := putLoad(ctx, p, small, fileIDs("boxbase", n), putClients, "1h")
	if err == nil {
		err = base.failure()
	}
	if err != nil {
		return fmt.Errorf("shared-file PUTs on the box relay: %w", err)
	}
	shared := base.rate()

	// The htpasswd cache: the first PUT verifies bcrypt, the next ones find it cached.
	uploads := boxUploads(n, b.p.boxNodes)
	body := b.randomContent(boxUploadSize)
	client := newClient(putClients)
	defer client.CloseIdleConnections()
	firstPut, err := boxPut(ctx, client, p.url, "reports/"+boxReportName(time.Unix(0, 0), nodeID(0)), user, pass, body)
	if err != nil {
		return err
	}
	const extra = 21 // these PUTs: they wait for the upstream as well
	var warm []time.Duration
	for i := range extra - 1 {
		d, err := boxPut(ctx, client, p.url, "reports/"+boxReportName(time.Unix(int64(i+1), 0), nodeID(0)), user, pass, body)
		if err != nil {
			return err
		}
		warm = append(warm, d)
	}
	slices.Sort(warm)
	warmMedian := warm[len(warm)/2]

	// The load: the rest of the n uploads, inventory updates and reports alternating, 16
	// clients.
	load := n - extra
	var next atomic.Int64
	errs := make(chan error, putClients)
	start := time.Now()
	var wg sync.WaitGroup
	for range putClients {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < load && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				if _, err := boxPut(ctx, client, p.url, uploads[i], user, pass, body); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	if err := errors.Join(<-errs, ctx.Err()); err != nil {
		return fmt.Errorf("agents' uploads: %w", err)
	}
	rate := float64(load) / took.Seconds()

	// RSS while they wait for the upstream, which is down.
	time.Sleep(b.p.settle)
	waiting, err := processMemory(p.pid())
	if err != nil {
		return err
	}

	// Delivery: the upstream comes up.
	ln, err := net.Listen("tcp", upAddr)
	if err != nil {
		return fmt.Errorf("the recording upstream: %w", err)
	}
	srv := &http.Server{Handler: up, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	upAt := time.Now()
	total := n
	deadline := time.Now().Add(5 * time.Minute)
	for up.count() < total {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d uploads delivered upstream after %s", up.count(), total, time.Since(upAt).Round(time.Second))
		}
		time.Sleep(10 * time.Millisecond)
	}
	first, last, bad := up.span()
	if bad > 0 {
		return fmt.Errorf("%d uploads reached the upstream with another size than %d bytes or without the password", bad, boxUploadSize)
	}
	delivery := float64(total-1) / last.Sub(first).Seconds()

	nn, nl := thousands(float64(n)), thousands(float64(load))
	sharedName := fmt.Sprintf("%s signed shared-file PUTs of %d KiB from %d clients on the same relay just before", nn, boxUploadSize>>10, putClients)
	b.log.Info("relay box", "uploads_per_s", math.Round(rate), "delivered_per_s", math.Round(delivery), "shared_puts_per_s", math.Round(shared),
		"first_put_ms", firstPut.Milliseconds(), "cached_put_ms", millis(warmMedian), "rss_waiting_MiB", waiting.RSS/mib, "anon_MiB", waiting.Anon/mib)
	b.rep.add(Scenario{Name: "box_uploads", Section: boxSection, Title: "agents' uploads/s, " + fmt.Sprint(putClients) + " clients", Unit: "uploads/s",
		Command: fmt.Sprintf("%s `PUT /inventory-updates/<node>_<datetime>.ocs.gz` and `PUT /reports/<datetime>@<node>.log.gz` alternating "+
			"(%d KiB each, HTTP Basic against a bcrypt cost-%d htpasswd entry, each answered 201) from %d keep-alive clients, "+
			"on a relay (role relay) whose upstream is down; limit: %s", nl, boxUploadSize>>10, bcrypt.DefaultCost, putClients, sharedName),
		Note: "A shared-file PUT verifies the RSA-2048 signature of its body; an agent's upload only its (cached) password: a ratio above 1 is expected."}, rate).
		against("shared-file PUTs/s", shared, "PUTs/s")
	b.rep.add(Scenario{Name: "box_delivery", Section: boxSection, Title: "their delivery upstream", Unit: "uploads/s",
		Command: fmt.Sprintf("the %s uploads waiting (those of box_uploads and box_first_put) once a recording upstream on loopback "+
			"(answering 201) comes up: uploads / time from the first to the last received, each checked for its size and password; "+
			"limit: the shared-file PUTs/s of box_uploads", nn)}, delivery).
		against("shared-file PUTs/s", shared, "PUTs/s")
	b.rep.add(Scenario{Name: "box_first_put", Section: boxSection, Title: "first upload of a user (bcrypt verify)", Unit: "ms",
		Command: fmt.Sprintf("one `PUT /reports/...` (%d KiB) before the load, the relay's htpasswd cache empty; baseline: the median of the next %d, "+
			"one after the other (the cache holds the verified password)", boxUploadSize>>10, extra-1)}, millis(firstPut)).
		against("median cached upload", millis(warmMedian), "ms")
	b.rep.add(Scenario{Name: "box_rss_waiting", Section: boxSection, Title: "RSS, " + nn + " uploads waiting for a down upstream", Unit: "MiB",
		Command: fmt.Sprintf("VmRSS %s after the uploads of box_first_put and box_uploads were all acknowledged, the upstream still down; "+
			"baseline: VmRSS of the same relay at rest, just started", b.p.settle),
		Note: fmt.Sprintf("RssAnon %.1f MiB (at rest %.1f MiB).", float64(waiting.Anon)/mib, float64(rest.Anon)/mib)}, float64(waiting.RSS)/mib).
		against("at rest", float64(rest.RSS)/mib, "MiB")
	return nil
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// boxUploads are the paths of n uploads: an inventory update and a report alternating, of
// nodes n0000... in turn, each name distinct.
func boxUploads(n, nodes int) []string {
	paths := make([]string, n)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range paths {
		node := nodeID(i % nodes)
		t := at.Add(time.Duration(i) * time.Second)
		if i%2 == 0 {
			paths[i] = "inventory-updates/" + node + "_" + t.Format("2006-01-02T15:04:05") + "+00:00.ocs.gz"
		} else {
			paths[i] = "reports/" + boxReportName(t, node)
		}
	}
	return paths
}

// boxReportName is an agent's report name: "<UTC datetime>@<node>.log.gz".
func boxReportName(t time.Time, node string) string {
	return t.UTC().Format("2006-01-02T15:04:05") + "+00:00@" + node + ".log.gz"
}

// boxPut sends one upload with Basic credentials, requires 201, and returns how long it took.
func boxPut(ctx context.Context, client *http.Client, base, path, user, pass string, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/"+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(user, pass)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("PUT /%s: %w", path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("PUT /%s: %s, want 201", path, resp.Status)
	}
	return time.Since(start), nil
}

// boxUpstream records the uploads delivered to it: how many, when the first and last came,
// and how many were not what was sent (size, password).
type boxUpstream struct {
	mu          sync.Mutex
	n, bad      int
	first, last time.Time
}

func (u *boxUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	size, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, pass, _ := r.BasicAuth()
	now := time.Now()
	u.mu.Lock()
	if u.n == 0 {
		u.first = now
	}
	u.n++
	u.last = now
	if r.Method != http.MethodPut || size != boxUploadSize || pass != "upstream" {
		u.bad++
	}
	u.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

func (u *boxUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n
}

func (u *boxUpstream) span() (first, last time.Time, bad int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.first, u.last, u.bad
}
