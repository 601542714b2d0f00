//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keel-relay/keel/internal/wire/sharedpath"
)

const (
	limitsSection      = "Small files and wear against the machine's limits"
	constrainedSection = "Constrained box: the relay in a 64 MiB memory cgroup, default config"
	// cgroupLimit is the memory limit of the constrained relay's cgroup.
	cgroupLimit = 64 * mib
	// putClients is how many clients send the small PUTs at once.
	putClients = 16
	// maxRetryWait caps how long a client honours a Retry-After before it retries.
	maxRetryWait = time.Second
)

// constrained measures the relay where memory and the disk are what bound it: small PUTs
// against 16 threads writing and fsyncing 1 KiB files, a 64 MiB PUT against the slower of
// SHA-256 and the disk, bytes written per content byte once expiry and value-log GC are done,
// then the relay with its packaged defaults in a 64 MiB memory cgroup (skipped, saying why,
// where no cgroup can be made).
func (b *bench) constrained(ctx context.Context) error {
	n := b.p.smallPuts
	fsync, err := fsyncRate(b.base, putClients, n, 1024)
	if err != nil {
		return err
	}
	small, smallHash, err := b.fleet.body(nodeID(0), b.randomContent(1024))
	if err != nil {
		return err
	}
	p, _, err := b.startRelayIn(ctx, "", "free", relayConfig{nodes: b.fleet.nodeMap(2), plain: true})
	if err != nil {
		return err
	}
	res, err := putLoad(ctx, p, small, fileIDs("free", n), putClients, "1h")
	if err == nil {
		err = res.failure()
	}
	if err != nil {
		return errors.Join(fmt.Errorf("small PUTs, unconstrained relay: %w", err), p.stop())
	}
	free := res.rate()
	ns := thousands(float64(n))
	b.log.Info("small PUTs, unconstrained", "files", n, "per_s", math.Round(free), "fsync_files_per_s", math.Round(fsync), "503s", res.retries)
	b.rep.add(Scenario{Name: "small_put_vs_fsync", Section: limitsSection, Title: "1 KiB PUTs/s, " + strconv.Itoa(putClients) + " clients, vs fsync", Unit: "files/s",
		Command: fmt.Sprintf("%s `PUT %s` of distinct ids (the same 1 KiB signed body, sha256, 2048-bit key) from %d clients at once, "+
			"default config; limit: %d threads writing %s new 1 KiB files, each fsynced, in the same file system just before",
			ns, putURL("/", "free-N", "1h")[1:], putClients, putClients, ns),
		Note: fmt.Sprintf("%d answers 503, retried.", res.retries)}, free).
		against(fmt.Sprintf("%d threads write+fsync 1 KiB files", putClients), fsync, "files/s").
		goal("≥ 0.5× fsync", free/fsync >= 0.5)
	measured64 := b.put64 == 0
	if measured64 { // the put scenario did not run: measure on this relay
		big, _, err := b.fleet.body(nodeID(0), b.randomContent(64*mib))
		if err == nil {
			b.put64, err = putSequential(ctx, newClient(1), p.url, "big", big, 64*mib, b.p.put64MiB)
		}
		if err != nil {
			return errors.Join(fmt.Errorf("64 MiB PUTs: %w", err), p.stop())
		}
	}
	if err := p.stop(); err != nil {
		return err
	}
	for _, w := range []struct {
		label       string
		size, count int
		goal        float64
	}{{"1 KiB", 1024, b.p.wearSmall, 4}, {"1 MiB", mib, b.p.wearBig, 1.3}} {
		if err := b.wear(ctx, w.label, w.size, w.count, w.goal); err != nil {
			return err
		}
	}
	if measured64 { // after the wear rows: one table for this section
		b.addPut64Limit(fmt.Sprintf("%d sequential `PUT %s` (64 MiB signed body, sha256) on the unconstrained relay of small_put_vs_fsync, "+
			"content MB/s, after one warm-up PUT", b.p.put64MiB, putURL("/", "big-N", "1h")[1:]), limitsSection)
	}
	cg, err := newMemCgroup(fmt.Sprintf("keel-bench-%d", os.Getpid()), cgroupLimit)
	if err != nil {
		b.log.Warn("constrained section skipped", "reason", err)
		b.rep.Scenarios = append(b.rep.Scenarios, Scenario{Name: "constrained", Section: constrainedSection, Title: "relay in a 64 MiB memory cgroup",
			Command: "needs a memory cgroup (root, cgroup v1 memory or v2 with the memory controller)", Note: "skipped: " + err.Error()})
		b.rep.Notes = append(b.rep.Notes, "Constrained section skipped: "+err.Error()+".")
		return nil
	}
	r := &cgRun{b: b, cg: cg, smallBody: small, smallHash: smallHash, free: free}
	err = r.run(ctx)
	if r.p != nil {
		err = errors.Join(err, r.p.stopWith(syscall.SIGTERM))
	}
	return errors.Join(err, cg.remove())
}

// addPut64Limit adds the row of the 64 MiB PUT speed (b.put64) against the slower of
// single-core SHA-256 and the disk's write+fsync of 64 MiB files, made by cmd, in section.
func (b *bench) addPut64Limit(cmd, section string) {
	limit := min(b.limits.sha256, b.limits.disk64MiB)
	b.rep.add(Scenario{Name: "put_64mib_vs_limit", Section: section, Title: "64 MiB PUT vs min(SHA-256, disk)", Unit: "MB/s",
		Command: cmd + fmt.Sprintf("; limit: the slower of single-core SHA-256 (%s MB/s) and write+fsync of new 64 MiB files in the same file system "+
			"(%s MB/s, median of 5)", num(b.limits.sha256/mb), num(b.limits.disk64MiB/mb))}, b.put64/mb).
		against("min(SHA-256, disk write+fsync)", limit/mb, "MB/s").
		goal("≥ 0.7× the slower", b.put64/limit >= 0.7)
}

// fsyncRate is the file system's pace for small durable files: threads goroutines create
// files new files of size bytes under dir between them, each written then fsynced; files/s.
func fsyncRate(dir string, threads, files, size int) (float64, error) {
	tmp, err := os.MkdirTemp(dir, "keel-bench-fsync-")
	if err != nil {
		return 0, fmt.Errorf("fsync rate: %w", err)
	}
	defer os.RemoveAll(tmp)
	buf := make([]byte, size)
	var next atomic.Int64
	errs := make(chan error, threads)
	start := time.Now()
	var wg sync.WaitGroup
	for range threads {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(files); i = next.Add(1) {
				if err := writeSynced(filepath.Join(tmp, strconv.FormatInt(i, 10)), buf); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, fmt.Errorf("fsync rate: %w", err)
	}
	return float64(files) / took.Seconds(), nil
}

// fileIDs returns n shared-file ids: prefix-0, prefix-1, ...
func fileIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = prefix + "-" + strconv.Itoa(i)
	}
	return ids
}

// loadResult is what a load of PUTs got.
type loadResult struct {
	acked     []string // ids answered 200
	retries   int      // 503 (or 429) answers, each retried after its Retry-After (at most maxRetryWait)
	failed    int      // other 5xx answers and transport errors, not retried
	firstFail string
	died      bool // the relay exited during the load (the load stopped there)
	took      time.Duration
}

// rate is the acknowledged PUTs per second.
func (l loadResult) rate() float64 { return float64(len(l.acked)) / l.took.Seconds() }

// failure is an error when some PUT failed or the relay died: where that is an error, not a
// figure.
func (l loadResult) failure() error {
	if l.died {
		return fmt.Errorf("the relay exited after %d files", len(l.acked))
	}
	if l.failed > 0 {
		return fmt.Errorf("%d PUTs failed; first: %s", l.failed, l.firstFail)
	}
	return nil
}

// putLoad PUTs body under each of ids (node n0000 to n0001) from clients at once, each on its
// own connection. A 503 or 429 is retried after its Retry-After, at most maxRetryWait; a 4xx
// is an error (the benchmark's fault); another failure is counted. When the relay exits the
// load stops and says so.
func putLoad(parent context.Context, p *relayProc, body []byte, ids []string, clients int, ttl string) (loadResult, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	client := newClient(clients)
	defer client.CloseIdleConnections()
	var (
		mu    sync.Mutex
		res   loadResult
		fatal error
		next  atomic.Int64
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if fatal == nil {
			fatal = err
		}
		cancel()
	}
	// one sends ids[i] until it is answered; false when the load must stop.
	one := func(i int) bool {
		u := putURL(p.url, ids[i], ttl)
		for ctx.Err() == nil {
			status, retry, err := put(ctx, client, u, body)
			mu.Lock()
			switch {
			case err != nil && exitedSoon(p):
				res.died = true
				mu.Unlock()
				cancel()
				return false
			case err != nil && ctx.Err() != nil:
				mu.Unlock()
				return false
			case err != nil || status >= 500 && status != http.StatusServiceUnavailable:
				res.failed++
				if res.firstFail == "" {
					res.firstFail = fmt.Sprintf("PUT %s: status %d, %v", ids[i], status, err)
				}
				mu.Unlock()
				return true
			case status == http.StatusOK:
				res.acked = append(res.acked, ids[i])
				mu.Unlock()
				return true
			case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
				res.retries++
				mu.Unlock()
				select {
				case <-ctx.Done():
					return false
				case <-time.After(retry):
				}
			default:
				mu.Unlock()
				fail(fmt.Errorf("PUT %s: status %d", ids[i], status))
				return false
			}
		}
		return false
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(ids) && one(i); i = int(next.Add(1) - 1) {
			}
		})
	}
	wg.Wait()
	res.took = time.Since(start)
	if fatal != nil && !res.died {
		return res, fatal
	}
	return res, parent.Err()
}

// put sends one PUT and returns its status and how long its Retry-After asks to wait (at most
// maxRetryWait; maxRetryWait when absent or unreadable).
func put(ctx context.Context, client *http.Client, url string, body []byte) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	wait := maxRetryWait
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		wait = min(time.Duration(s)*time.Second, maxRetryWait)
	}
	return resp.StatusCode, max(wait, 10*time.Millisecond), nil
}

// exitedSoon says whether the relay has exited, waiting a little: a connection it dropped as
// it died is seen before its exit.
func exitedSoon(p *relayProc) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(300 * time.Millisecond):
		return false
	}
}

// headAll HEADs each of ids with hash, clients at a time, and returns how many are missing
// (any answer but 200) and the first of them.
func headAll(ctx context.Context, p *relayProc, ids []string, hash string) (int, string, error) {
	client := newClient(putClients)
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var mu sync.Mutex
	missing, first := 0, ""
	var firstErr error
	var wg sync.WaitGroup
	for range putClients {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(ids); i = int(next.Add(1) - 1) {
				u := p.url + sharedpath.Path(api, nodeID(1), nodeID(0), ids[i]) + "?hash=" + hash
				req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
				if err != nil {
					mu.Lock()
					firstErr = cmpOr(firstErr, err)
					mu.Unlock()
					return
				}
				resp, err := client.Do(req)
				mu.Lock()
				if err != nil {
					firstErr = cmpOr(firstErr, fmt.Errorf("HEAD %s: %w", ids[i], err))
					mu.Unlock()
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					missing++
					if first == "" {
						first = fmt.Sprintf("%s: %s", ids[i], resp.Status)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return missing, first, firstErr
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

const wearSection = limitsSection

// wear measures the bytes the relay writes to disk per content byte for count files of size
// bytes: PUT by 16 clients with a 2 s TTL to a relay whose cleaner runs every second, then
// followed until no file is stored and write_bytes (/proc/PID/io) has stood still for
// wearPlateau, so that what expiry and value-log GC rewrite counts too.
func (b *bench) wear(ctx context.Context, label string, size, count int, goal float64) error {
	p, _, err := b.startRelayIn(ctx, "", "wear", relayConfig{nodes: b.fleet.nodeMap(2), plain: true, cleanup: time.Second})
	if err != nil {
		return err
	}
	defer p.stop()
	body, _, err := b.fleet.body(nodeID(0), b.randomContent(size))
	if err != nil {
		return err
	}
	w0, err := processWriteBytes(p.pid())
	if err != nil {
		return err
	}
	const ttl = "2"
	res, err := putLoad(ctx, p, body, fileIDs("wear", count), putClients, ttl)
	if err == nil {
		err = res.failure()
	}
	if err != nil {
		return fmt.Errorf("wear, %s files: %w", label, err)
	}
	w1, err := processWriteBytes(p.pid())
	if err != nil {
		return err
	}
	limit := 30 * time.Second
	if !b.p.quick {
		limit = 2 * time.Minute
	}
	deadline := time.Now().Add(limit)
	last, still := w1, time.Now()
	settled := false
	for time.Now().Before(deadline) {
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
		st, err := relayStatus(ctx, p)
		if err != nil {
			return err
		}
		w, err := processWriteBytes(p.pid())
		if err != nil {
			return err
		}
		if st.Files > 0 || w != last {
			last, still = w, time.Now()
		}
		if st.Files == 0 && time.Since(still) >= b.p.wearPlateau {
			settled = true
			break
		}
	}
	content := float64(size) * float64(count)
	total, upload := float64(last-w0)/content, float64(w1-w0)/content
	note := fmt.Sprintf("%.2f while the files were PUT, %.2f after (expiry, compaction, value-log GC).", upload, total-upload)
	if !settled {
		note += fmt.Sprintf(" Files still stored or the relay still writing %s after the last PUT: the figure is a floor.", limit)
	}
	n := thousands(float64(count))
	name := "wear_" + map[int]string{1024: "1kib", mib: "1mib"}[size]
	b.rep.add(Scenario{Name: name, Section: wearSection, Title: "bytes written per content byte, " + n + " × " + label, Unit: "B/B",
		Command: fmt.Sprintf("write_bytes of /proc/PID/io of a relay (default config, shared_files.cleanup_interval: 1s) from its start to when "+
			"files_stored was 0 and write_bytes had not grown for %s, divided by the content bytes of %s `PUT %s` from %d clients",
			b.p.wearPlateau, n, putURL("/", "wear-N", ttl)[1:], putClients), Note: note}, total).
		against("goal", goal, "B/B").
		goal(fmt.Sprintf("≤ %g", goal), total <= goal)
	b.log.Info("wear", "files", count, "size", label, "per_byte", math.Round(total*100)/100, "upload", math.Round(upload*100)/100, "settled", settled)
	return nil
}

// cgRun is the constrained relay's run in its memory cgroup.
type cgRun struct {
	b          *bench
	cg         *memCgroup
	cfg        relayConfig
	p          *relayProc
	smallBody  []byte
	smallHash  string
	free       float64 // small-PUT rate of the unconstrained relay
	bigHash    string
	small, big []string // ids acknowledged
	restarts   int      // starts after the relay died
}

// run enrolls the edge daemons (on the same store, outside the cgroup), then runs the
// constrained relay's phases: small PUTs, 1 MiB PUTs, restart, edge daemons, verification.
func (r *cgRun) run(ctx context.Context) error {
	b := r.b
	dir, err := b.newDir("", "cgroup")
	if err != nil {
		return err
	}
	listeners, err := newEdgeListeners(b.p.cgEdgeN)
	if err != nil {
		return err
	}
	edgeAddr, adminAddr := listeners.edge, listeners.admin
	enrollCfg := relayConfig{dir: dir, nodes: b.fleet.nodeMap(2), edge: listeners}
	ids, _, err := b.enroll(ctx, enrollCfg, b.p.cgEdgeN)
	if err != nil {
		return err
	}
	r.cfg = relayConfig{dir: dir, nodes: b.fleet.nodeMap(2), plain: true, cgroup: r.cg.dir,
		edge: &edgeListeners{edge: edgeAddr, admin: adminAddr}}
	if err := r.ensure(ctx); err != nil {
		return err
	}
	b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("Constrained section: memory cgroup %s at %s, limit %d MiB, %s; the relay is started by a shell "+
		"that joins the cgroup and execs it, so all of it runs inside. Config: data_dir, nodes_file, log level, the API, admin and edge "+
		"listeners; everything else the packaged defaults (no GOMEMLIMIT). Edge daemons were enrolled beforehand by a relay outside the cgroup "+
		"on the same store. Peak memory is the cgroup's (page cache included, which the kernel reclaims under the limit); anonymous is memory.stat %s.",
		r.cg.version(), r.cg.dir, cgroupLimit/mib, r.cg.swap, map[bool]string{false: "rss", true: "anon"}[r.cg.v2]))
	if err := r.smallPuts(ctx); err != nil {
		return err
	}
	if err := r.bigPuts(ctx); err != nil {
		return err
	}
	if err := r.restart(ctx); err != nil {
		return err
	}
	if err := r.edge(ctx, ids, adminAddr, edgeAddr); err != nil {
		return err
	}
	return r.verify(ctx)
}

// ensure starts the relay in the cgroup unless it is running.
func (r *cgRun) ensure(ctx context.Context) error {
	if r.p != nil {
		select {
		case <-r.p.exited:
			r.restarts++
		default:
			return nil
		}
	}
	p, err := startRelay(ctx, r.b.log, r.b.relay, r.cfg)
	if err != nil {
		return fmt.Errorf("relay in the memory cgroup: %w", err)
	}
	r.p = p
	return nil
}

// death describes how the relay ended, for a figure: OOM-killed or exited.
func (r *cgRun) death(files int, what string) string {
	how := "exited (" + r.p.cmd.ProcessState.String() + ")"
	if ws, ok := r.p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		how = "killed (SIGKILL)"
		if n, err := r.cg.oomKills(); err == nil && n > 0 {
			how = "OOM-killed"
		}
	}
	return fmt.Sprintf("%s after %s %s", how, thousands(float64(files)), what)
}

// memWatch follows the cgroup's memory during a phase.
type memWatch struct {
	cg       *memCgroup
	anon     int64
	resetErr error
	stop     chan struct{}
	wg       sync.WaitGroup
}

// watch resets the cgroup's peak (v1) and samples its anonymous memory every 20 ms.
func (r *cgRun) watch() *memWatch {
	w := &memWatch{cg: r.cg, resetErr: r.cg.resetPeak(), stop: make(chan struct{})}
	w.wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if a, err := w.cg.anon(); err == nil {
				w.anon = max(w.anon, a)
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	})
	return w
}

// done stops sampling and adds the phase's peak rows.
func (w *memWatch) done(b *bench, name, phase string) {
	close(w.stop)
	w.wg.Wait()
	peak, err := w.cg.peak()
	cmd := "the cgroup's memory.max_usage_in_bytes, reset before the phase"
	if w.cg.v2 {
		cmd = "the cgroup's memory.peak (since the cgroup was made: v2 cannot reset it)"
	} else if w.resetErr != nil {
		cmd = "the cgroup's memory.max_usage_in_bytes (not reset: " + w.resetErr.Error() + ")"
	}
	if err != nil {
		b.rep.Scenarios = append(b.rep.Scenarios, Scenario{Name: name + "_peak", Section: constrainedSection, Title: "… peak memory, " + phase,
			Command: cmd, Note: "not read: " + err.Error()})
	} else {
		b.rep.add(Scenario{Name: name + "_peak", Section: constrainedSection, Title: "… peak memory (page cache included), " + phase, Unit: "MiB",
			Command: cmd}, float64(peak)/mib).
			against("cgroup limit", cgroupLimit/mib, "MiB")
	}
	b.rep.add(Scenario{Name: name + "_peak_anon", Section: constrainedSection, Title: "… peak anonymous memory, " + phase, Unit: "MiB",
		Command: "highest anonymous memory of the cgroup's memory.stat, sampled every 20 ms"}, float64(w.anon)/mib).
		against("cgroup limit", cgroupLimit/mib, "MiB")
}

// putPhase runs a load of PUTs on the constrained relay and adds its rows: the rate (or how
// the relay died), the 503s, the peaks. It returns the index of the rate's row.
func (r *cgRun) putPhase(ctx context.Context, name, title, cmd string, body []byte, ids []string, clients int) (loadResult, int, error) {
	b := r.b
	if err := r.ensure(ctx); err != nil {
		return loadResult{}, 0, err
	}
	w := r.watch()
	res, err := putLoad(ctx, r.p, body, ids, clients, "1d")
	w.done(b, name, title)
	if err != nil {
		return res, 0, err
	}
	note := fmt.Sprintf("%d answers 503 (retried after Retry-After, at most %s); %d other failures", res.retries, maxRetryWait, res.failed)
	if res.firstFail != "" {
		note += " (first: " + tail(res.firstFail, 200) + ")"
	}
	note += "."
	s := Scenario{Name: name, Section: constrainedSection, Title: title, Command: cmd}
	row := len(b.rep.Scenarios)
	if res.died {
		s.Note = r.death(len(res.acked), "files") + fmt.Sprintf(" (%s files/s until then). ", num(res.rate())) + note
		b.rep.Scenarios = append(b.rep.Scenarios, s)
	} else {
		s.Note, s.Unit = note, "files/s"
		b.rep.add(s, res.rate())
	}
	b.rep.add(Scenario{Name: name + "_503", Section: constrainedSection, Title: "… answers 503 (then retried)", Unit: "answers",
		Command: "503 or 429 answers to the PUTs above"}, float64(res.retries))
	b.log.Info("constrained PUTs", "phase", name, "acked", len(res.acked), "of", len(ids), "per_s", math.Round(res.rate()),
		"503s", res.retries, "failed", res.failed, "died", res.died)
	return res, row, nil
}

func (r *cgRun) smallPuts(ctx context.Context) error {
	n := r.b.p.smallPuts
	ns := thousands(float64(n))
	res, row, err := r.putPhase(ctx, "cg_small_put", ns+" × 1 KiB PUTs, 16 clients", fmt.Sprintf(
		"%s `PUT %s` of distinct ids (the same 1 KiB signed body) from %d clients at once to the relay in the cgroup; "+
			"baseline: the same load on the unconstrained relay above", ns, putURL("/", "small-N", "1d")[1:], putClients),
		r.smallBody, fileIDs("small", n), putClients)
	if err != nil {
		return err
	}
	r.small = res.acked
	s := &r.b.rep.Scenarios[row]
	if s.Figure != nil {
		s.against("unconstrained relay, same load", r.free, "files/s").goal("≥ 0.5× unconstrained", *s.Figure/r.free >= 0.5)
	} else {
		s.Note += fmt.Sprintf(" Unconstrained relay, same load: %s files/s.", num(r.free))
		s.goal("≥ 0.5× unconstrained", false)
	}
	return nil
}

func (r *cgRun) bigPuts(ctx context.Context) error {
	n := r.b.p.bigPuts
	body, hash, err := r.b.fleet.body(nodeID(0), r.b.randomContent(mib))
	if err != nil {
		return err
	}
	r.bigHash = hash
	res, row, err := r.putPhase(ctx, "cg_1mib_put", strconv.Itoa(n)+" concurrent 1 MiB PUTs", fmt.Sprintf(
		"%d `PUT %s` (1 MiB signed body) at once, one connection each, after the small PUTs", n, putURL("/", "big-N", "1d")[1:]),
		body, fileIDs("big", n), n)
	if err != nil {
		return err
	}
	r.big = res.acked
	if s := &r.b.rep.Scenarios[row]; s.Figure != nil {
		*s.Figure *= mib / mb // files/s to MB/s
		s.Unit = "MB/s"
		s.against("disk write+fsync of 1 MiB files", r.b.limits.disk1MiB/mb, "MB/s")
	}
	return nil
}

// restart stops the relay (SIGTERM) and starts it again in the cgroup on the full store: time
// to ready, and the peak until it is idle.
func (r *cgRun) restart(ctx context.Context) error {
	b := r.b
	if r.p != nil {
		if err := r.p.stopWith(syscall.SIGTERM); err != nil {
			return err
		}
	}
	w := r.watch()
	p, err := startRelay(ctx, b.log, b.relay, r.cfg)
	if err != nil {
		close(w.stop)
		w.wg.Wait()
		return fmt.Errorf("restart in the memory cgroup: %w", err)
	}
	r.p = p
	busy, err := waitIdle(ctx, p.pid(), 30*time.Second)
	if err != nil {
		close(w.stop)
		w.wg.Wait()
		return err
	}
	files := thousands(float64(len(r.small) + len(r.big)))
	ms := float64(p.startup) / float64(time.Millisecond)
	s := b.rep.add(Scenario{Name: "cg_restart", Section: constrainedSection, Title: "restart on the full store (" + files + " files uploaded)", Unit: "ms",
		Command: "SIGTERM, then `keel-relay run` again in the cgroup: time from exec to the first 200 on GET " + statusPath}, ms)
	if b.emptyUp > 0 { // measured by the put scenario
		s.against("unconstrained start, empty store", float64(b.emptyUp)/float64(time.Millisecond), "ms")
	}
	w.done(b, "cg_restart", fmt.Sprintf("restart until idle (%.1f s)", busy.Seconds()))
	return nil
}

// edge connects cgEdgeN daemons to the constrained relay and counts those that fit.
func (r *cgRun) edge(ctx context.Context, ids, adminAddr, edgeAddr string) error {
	b := r.b
	n := b.p.cgEdgeN
	if err := r.ensure(ctx); err != nil {
		return err
	}
	w := r.watch()
	load, err := startLoad(ctx, b.edgeload, edgeAddr, ids)
	if err != nil {
		close(w.stop)
		w.wg.Wait()
		return err
	}
	plateau := 10 * time.Second
	if b.p.quick {
		plateau = 3 * time.Second
	}
	streams, best, bestAt := 0.0, 0.0, time.Now()
	died := false
	start := time.Now()
	for time.Since(start) < 3*time.Minute {
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			_ = load.stop()
			return err
		}
		select {
		case <-r.p.exited:
			died = true
		default:
		}
		if died {
			break
		}
		v, err := metric(ctx, adminAddr, "keel_edge_streams")
		if err != nil {
			continue
		}
		streams = v
		if v > best {
			best, bestAt = v, time.Now()
		}
		if v >= float64(n) || time.Since(bestAt) >= plateau {
			break
		}
	}
	took := time.Since(start)
	stats, serr := load.stats()
	lerr := load.stop()
	w.done(b, "cg_edge", thousands(float64(n))+" edge daemons")
	if serr != nil {
		return serr
	}
	if lerr != nil {
		b.log.Warn("edgeload", "err", lerr)
	}
	refused := stats.ErrorCodes["ResourceExhausted"]
	other := int(stats.Errors) - refused
	ns := thousands(float64(n))
	cmd := fmt.Sprintf("`edgeload run`: %s enrolled daemons, each on its own connection, reconnecting with backoff (250 ms doubling to 8 s, "+
		"full jitter) when refused; keel_edge_streams on the admin /metrics, polled until all were up or it had not grown for %s (%.1f s)",
		ns, plateau, took.Seconds())
	s := Scenario{Name: "cg_edge_streams", Section: constrainedSection, Title: "edge streams that fit (" + ns + " daemons)", Command: cmd,
		Note: fmt.Sprintf("%d refusals with ResourceExhausted, %d other errors (%v), %d Unavailable.", refused, other, stats.ErrorCodes, stats.Unavailable)}
	if died {
		s.Note = r.death(int(best), "streams") + ". " + s.Note
		b.rep.Scenarios = append(b.rep.Scenarios, s)
	} else {
		s.Unit = "streams"
		b.rep.add(s, streams).against("daemons", float64(n), "streams")
	}
	b.rep.add(Scenario{Name: "cg_edge_refused", Section: constrainedSection, Title: "… refusals (ResourceExhausted, then retried)", Unit: "refusals",
		Command: "ConnectEdge streams refused with ResourceExhausted, as the daemons (edgeload) saw them"}, float64(refused))
	b.log.Info("constrained edge", "daemons", n, "streams", streams, "refused", refused, "other_errors", other, "died", died)
	return nil
}

// verify checks every acknowledged upload is stored, and reads the OOM kills.
func (r *cgRun) verify(ctx context.Context) error {
	b := r.b
	if err := r.ensure(ctx); err != nil {
		return err
	}
	missSmall, first1, err := headAll(ctx, r.p, r.small, r.smallHash)
	if err != nil {
		return err
	}
	missBig, first2, err := headAll(ctx, r.p, r.big, r.bigHash)
	if err != nil {
		return err
	}
	missing, acked := missSmall+missBig, len(r.small)+len(r.big)
	note := ""
	if first := first1 + first2; first != "" {
		note = "First missing: " + first + "."
	}
	b.rep.add(Scenario{Name: "cg_missing", Section: constrainedSection, Title: "acknowledged uploads not stored", Unit: "files",
		Command: "HEAD ?hash= of every file answered 200 above, on the relay in the cgroup after the edge phase", Note: note}, float64(missing)).
		against("acknowledged", float64(acked), "files").
		goal("none", missing == 0)
	kills, err := r.cg.oomKills()
	if err != nil {
		return err
	}
	name := map[bool]string{false: "memory.oom_control", true: "memory.events"}[r.cg.v2]
	b.rep.add(Scenario{Name: "cg_oom_kills", Section: constrainedSection, Title: "OOM kills in the cgroup (whole run)", Unit: "kills",
		Command: "oom_kill of the cgroup's " + name + " at the end",
		Note:    fmt.Sprintf("The relay was started again %d times after it died.", r.restarts)}, float64(kills)).
		goal("0", kills == 0)
	b.log.Info("constrained: verified", "acked", acked, "missing", missing, "oom_kills", kills, "restarts", r.restarts)
	return nil
}
