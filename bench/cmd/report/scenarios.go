//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keel-relay/keel/internal/wire/sharedpath"
	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/storage"
)

const (
	mib = 1 << 20
	mb  = 1e6
	// api is the relay API prefix the benchmarks call.
	api = sharedpath.Unversioned
)

// params sizes a run.
type params struct {
	quick             bool
	shaTime           time.Duration // how long SHA-256 speed is measured
	put1MiB, put64MiB int           // sequential PUTs of each size
	heyN, heyC        int           // HEAD load: requests and concurrent clients
	heyRounds         int           // HEAD rounds, relay and bare server alternating; the best counts
	files, fileSize   int           // files in the generated store, and their size
	storeNodes        int           // nodes the generated files are spread over
	settle            time.Duration // wait before RSS at rest is read
	rssPuts           int           // concurrent 1 MiB PUTs while RSS is watched
	rrNodes, rrConc   int           // remote run: nodes and concurrency
	rrSleep           time.Duration // what the remote-run command sleeps
	expiryFiles       int           // files of expirySize stored then expired
	expirySize        int
	plateau           time.Duration // disk usage unchanged this long after expiry = done
	expiryMax         time.Duration // give up waiting for disk space after this long
	edgeN             int           // edge daemons (one stream and connection each)
	edgeInvokes       int           // InvokeTool round trips measured (at least)
	nodeMapNodes      int           // entries of the node map loaded (goals apply to it)
	bigNodeMapNodes   int           // entries of a second, bigger map loaded; 0 = none
	// The constrained section: small 1 KiB PUTs from 16 clients (also the fsync baseline's
	// file count), concurrent 1 MiB PUTs and edge daemons in the memory cgroup; files of the
	// wear figures, and how long write_bytes must stay still after expiry.
	smallPuts, bigPuts, cgEdgeN int
	wearSmall, wearBig          int
	wearPlateau                 time.Duration
	// The relay-box section: agents' uploads sent (then waiting for a down upstream, then
	// delivered), and the nodes they come from.
	boxUploads, boxNodes int
}

func fullParams() params {
	return params{
		shaTime: time.Second, put1MiB: 64, put64MiB: 8, heyN: 50000, heyC: 64, heyRounds: 2,
		files: 100000, fileSize: 1024, storeNodes: 1000, settle: 5 * time.Second, rssPuts: 100,
		rrNodes: 1000, rrConc: 32, rrSleep: 200 * time.Millisecond,
		expiryFiles: 64, expirySize: 16 * mib, plateau: 10 * time.Second, expiryMax: 60 * time.Second,
		edgeN: 10000, edgeInvokes: 50000,
		nodeMapNodes: 100_000, bigNodeMapNodes: 1_000_006,
		smallPuts: 20000, bigPuts: 100, cgEdgeN: 2000, wearSmall: 20000, wearBig: 200, wearPlateau: 5 * time.Second,
		boxUploads: 1000, boxNodes: 100,
	}
}

func quickParams() params {
	p := fullParams()
	p.quick = true
	p.shaTime = 300 * time.Millisecond
	p.put1MiB, p.put64MiB = 16, 2
	p.heyN, p.heyRounds = 5000, 1
	p.files, p.storeNodes = 2000, 100
	p.settle = 2 * time.Second
	p.rrNodes = 128 // 4 waves of 32: the ideal time is reachable, as with 1,000 (31.25 waves)
	p.expiryFiles = 8
	p.plateau = 5 * time.Second
	p.edgeN, p.edgeInvokes = 200, 5000
	p.nodeMapNodes, p.bigNodeMapNodes = 20_000, 0
	p.smallPuts, p.bigPuts, p.cgEdgeN = 2000, 20, 200
	p.wearSmall, p.wearBig, p.wearPlateau = 2000, 20, 3*time.Second
	p.boxUploads = 300
	return p
}

// bench holds what the scenarios share.
type bench struct {
	log      *slog.Logger
	p        params
	root     string // module root
	relay    string // keel-relay binary
	bare     string // bareserver binary
	edgeload string // edgeload binary
	base     string // where data directories are made
	fleet    *fleet
	rep      *Report
	limits   limits
	content  map[int][]byte // random content by size
	emptyUp  time.Duration  // start-up time of a relay on an empty store
	put64    float64        // 64 MiB PUT speed, bytes/s (sizes the expiry scenario's TTL)
}

// limits are the machine's limits measured in this run, in bytes/s.
type limits struct {
	sha256, disk1MiB, disk64MiB float64
}

func (b *bench) randomContent(size int) []byte {
	if c, ok := b.content[size]; ok {
		return c
	}
	c := make([]byte, size)
	_, _ = rand.Read(c) // crypto/rand.Read never fails
	b.content[size] = c
	return c
}

// newDir makes a fresh directory for one relay under base (or under parent when not empty).
func (b *bench) newDir(parent, name string) (string, error) {
	if parent == "" {
		parent = b.base
	}
	dir, err := os.MkdirTemp(parent, "keel-bench-"+name+"-")
	if err != nil {
		return "", fmt.Errorf("make a directory for %s: %w", name, err)
	}
	return dir, nil
}

// startRelayIn starts a relay with cfg in a fresh directory for name, made by newDir(parent,
// name) and set as cfg.dir. It returns that directory also when the relay did not start
// ("" when it could not be made), so that a caller that removes it can.
func (b *bench) startRelayIn(ctx context.Context, parent, name string, cfg relayConfig) (*relayProc, string, error) {
	dir, err := b.newDir(parent, name)
	if err != nil {
		return nil, "", err
	}
	cfg.dir = dir
	p, err := startRelay(ctx, b.log, b.relay, cfg)
	return p, dir, err
}

// measureLimits measures single-core SHA-256 speed and the data directory's write+fsync
// speed for 1 MiB and 64 MiB files.
func (b *bench) measureLimits() error {
	b.limits.sha256 = sha256Speed(b.randomContent(8*mib), b.p.shaTime)
	var err error
	if b.limits.disk1MiB, err = diskSyncSpeed(b.base, b.randomContent(mib), 8); err != nil {
		return err
	}
	if b.limits.disk64MiB, err = diskSyncSpeed(b.base, b.randomContent(64*mib), 1); err != nil {
		return err
	}
	b.log.Info("limits", "sha256_MBps", math.Round(b.limits.sha256/mb),
		"disk_sync_1MiB_MBps", math.Round(b.limits.disk1MiB/mb), "disk_sync_64MiB_MBps", math.Round(b.limits.disk64MiB/mb))
	return nil
}

// sha256Speed measures single-core SHA-256 throughput in bytes/s over buf: the best of three
// windows of d/3 (the machine may be busy with something else in one of them).
func sha256Speed(buf []byte, d time.Duration) float64 {
	best := 0.0
	for range 3 {
		h := sha256.New()
		start := time.Now()
		n := 0
		for time.Since(start) < d/3 {
			h.Write(buf)
			n += len(buf)
		}
		best = max(best, float64(n)/time.Since(start).Seconds())
	}
	return best
}

// diskSyncSpeed measures how fast dir takes data that must be durable, in bytes/s: new files
// of buf's size, each written then fsynced, count of them in a row; the median of five rounds
// (a virtual disk shared with other machines is noisy both ways). It is the limit of a synced
// PUT.
func diskSyncSpeed(dir string, buf []byte, count int) (float64, error) {
	tmp, err := os.MkdirTemp(dir, "keel-bench-disk-")
	if err != nil {
		return 0, fmt.Errorf("disk speed: %w", err)
	}
	defer os.RemoveAll(tmp)
	var speeds []float64
	for round := range 5 {
		start := time.Now()
		for i := range count {
			path := filepath.Join(tmp, fmt.Sprintf("%d-%d", round, i))
			if err := writeSynced(path, buf); err != nil {
				return 0, fmt.Errorf("disk speed: %w", err)
			}
		}
		speeds = append(speeds, float64(len(buf)*count)/time.Since(start).Seconds())
	}
	slices.Sort(speeds)
	return speeds[len(speeds)/2], nil
}

// writeSynced creates path with content buf and fsyncs it.
func writeSynced(path string, buf []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %d bytes to %s: %w", len(buf), path, err)
	}
	return nil
}

// putURL is where node n0000 shares file id with node n0001.
func putURL(base, id, ttl string) string {
	return sharedpath.Path(base, nodeID(1), nodeID(0), id) + "?ttl=" + ttl
}

// putSequential PUTs body count times, one after the other, and returns the content bytes/s.
func putSequential(ctx context.Context, client *http.Client, base, prefix string, body []byte, size, count int) (float64, error) {
	// One PUT before the clock starts: connection set-up, first value-log file.
	if _, err := do(ctx, client, http.MethodPut, putURL(base, prefix+"-warm", "1h"), body, http.StatusOK); err != nil {
		return 0, err
	}
	start := time.Now()
	for i := range count {
		if _, err := do(ctx, client, http.MethodPut, putURL(base, fmt.Sprintf("%s-%d", prefix, i), "1h"), body, http.StatusOK); err != nil {
			return 0, err
		}
	}
	return float64(size*count) / time.Since(start).Seconds(), nil
}

const putSection = "Shared-file PUT throughput (signed sha256, synced, one client)"

// puts measures PUT throughput of 1 MiB and 64 MiB files, then HEAD on the same relay.
func (b *bench) puts(ctx context.Context) error {
	p, _, err := b.startRelayIn(ctx, "", "put", relayConfig{nodes: b.fleet.nodeMap(2)})
	if err != nil {
		return err
	}
	defer p.stop()
	b.emptyUp = p.startup
	client := newClient(4)
	for _, c := range []struct {
		name, label string
		size, count int
		disk        float64
	}{
		{"1mib", "1 MiB", mib, b.p.put1MiB, b.limits.disk1MiB},
		{"64mib", "64 MiB", 64 * mib, b.p.put64MiB, b.limits.disk64MiB},
	} {
		body, _, err := b.fleet.body(nodeID(0), b.randomContent(c.size))
		if err != nil {
			return err
		}
		speed, err := putSequential(ctx, client, p.url, "put"+c.name, body, c.size, c.count)
		if err != nil {
			return err
		}
		if c.size == 64*mib {
			b.put64 = speed
		}
		cmd := fmt.Sprintf("%d sequential `PUT %s` (%s signed body, sha256), content MB/s, after one warm-up PUT",
			c.count, putURL("/", "put"+c.name+"-N", "1h")[1:], c.label)
		b.rep.add(Scenario{Name: "put_" + c.name + "_vs_sha256", Section: putSection, Title: c.label + " PUT vs SHA-256",
			Unit: "MB/s", Command: cmd}, speed/mb).
			against("single-core SHA-256", b.limits.sha256/mb, "MB/s").
			goal("≥ 0.7× SHA-256", speed/b.limits.sha256 >= 0.7)
		b.rep.add(Scenario{Name: "put_" + c.name + "_vs_disk", Section: putSection, Title: c.label + " PUT vs disk",
			Unit: "MB/s", Command: cmd + "; limit: new " + c.label + " files written then fsynced in the same file system, median of 5 rounds"}, speed/mb).
			against("disk write+fsync of "+c.label+" files", c.disk/mb, "MB/s")
		if c.size == 64*mib {
			b.addPut64Limit(cmd, putSection)
		}
		b.log.Info("PUT", "size", c.label, "MBps", math.Round(speed/mb))
	}
	if err := b.putTmpfs(ctx); err != nil {
		return err
	}
	return b.head(ctx, p)
}

// putTmpfs measures 64 MiB PUTs with the data directory on tmpfs: the disk out of the figure.
func (b *bench) putTmpfs(ctx context.Context) error {
	const shm = "/dev/shm"
	if st, err := os.Stat(shm); err != nil || !st.IsDir() {
		b.rep.Notes = append(b.rep.Notes, "No /dev/shm: the tmpfs PUT figure was not measured.")
		return nil
	}
	p, dir, err := b.startRelayIn(ctx, shm, "tmpfs", relayConfig{nodes: b.fleet.nodeMap(2)})
	defer os.RemoveAll(dir) // also when the relay did not start; "" removes nothing
	if err != nil {
		return err
	}
	defer p.stop()
	body, _, err := b.fleet.body(nodeID(0), b.randomContent(64*mib))
	if err != nil {
		return err
	}
	speed, err := putSequential(ctx, newClient(4), p.url, "tmpfs", body, 64*mib, b.p.put64MiB)
	if err != nil {
		return err
	}
	b.rep.add(Scenario{Name: "put_64mib_tmpfs_vs_sha256", Section: putSection, Title: "64 MiB PUT, data dir on tmpfs, vs SHA-256",
		Unit: "MB/s", Command: fmt.Sprintf("as put_64mib, %d PUTs, with the relay's data_dir in /dev/shm", b.p.put64MiB)}, speed/mb).
		against("single-core SHA-256", b.limits.sha256/mb, "MB/s").
		goal("≥ 0.7× SHA-256", speed/b.limits.sha256 >= 0.7)
	b.log.Info("PUT on tmpfs", "size", "64 MiB", "MBps", math.Round(speed/mb))
	return nil
}

const headSection = "HEAD (hash check) under 64 concurrent clients"

// head loads the relay's HEAD route with hey, then a bare net/http server answering the same
// route from memory, alternating, and keeps each one's best round.
func (b *bench) head(ctx context.Context, p *relayProc) error {
	content := b.randomContent(4096)
	body, hash, err := b.fleet.body(nodeID(0), content)
	if err != nil {
		return err
	}
	if _, err := do(ctx, newClient(1), http.MethodPut, putURL(p.url, "head", "1h"), body, http.StatusOK); err != nil {
		return err
	}
	path := sharedpath.Path(api, nodeID(1), nodeID(0), "head") + "?hash=" + hash
	bare, bareURL, err := startBare(ctx, b.bare, fmt.Sprintf("%s/%s/head", nodeID(1), nodeID(0)), hash, len(content))
	if err != nil {
		return err
	}
	defer func() { _ = bare.Process.Signal(os.Interrupt); _ = bare.Wait() }()
	targets := []struct{ name, url string }{{"relay", p.url + path}, {"bare", bareURL + path}}
	best := map[string]heyResult{}
	for _, t := range targets { // warm-up: builds hey on the first call, opens connections
		if _, err := runHey(ctx, b.root, 2000, b.p.heyC, t.url); err != nil {
			return err
		}
	}
	for round := range b.p.heyRounds {
		for _, t := range targets {
			res, err := runHey(ctx, b.root, b.p.heyN, b.p.heyC, t.url)
			if err != nil {
				return err
			}
			b.log.Info("HEAD", "server", t.name, "round", round+1, "rps", math.Round(res.ReqPerSec), "p50", res.P50, "p99", res.P99)
			if res.ReqPerSec > best[t.name].ReqPerSec {
				best[t.name] = res
			}
		}
	}
	relayRes, bareRes := best["relay"], best["bare"]
	cmd := fmt.Sprintf("`%s` (best of %d, alternating with the bare server, after a 2,000-request warm-up)",
		strings.Join(heyCommand(".", b.p.heyN, b.p.heyC, "http://127.0.0.1:PORT"+path), " "), b.p.heyRounds)
	cmd = strings.Replace(cmd, "-modfile=./tools/go.mod", "-modfile=tools/go.mod", 1)
	baseline := "bare net/http server (bench/cmd/bareserver)"
	b.rep.add(Scenario{Name: "head_rps", Section: headSection, Title: "HEAD requests/s", Unit: "req/s", Command: cmd}, relayRes.ReqPerSec).
		against(baseline, bareRes.ReqPerSec, "req/s").
		goal("≥ 0.5× bare handler", relayRes.ReqPerSec/bareRes.ReqPerSec >= 0.5)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.rep.add(Scenario{Name: "head_p50", Section: headSection, Title: "HEAD latency p50", Unit: "ms", Command: "same run as head_rps"}, ms(relayRes.P50)).
		against(baseline, ms(bareRes.P50), "ms")
	b.rep.add(Scenario{Name: "head_p99", Section: headSection, Title: "HEAD latency p99", Unit: "ms", Command: "same run as head_rps"}, ms(relayRes.P99)).
		against(baseline, ms(bareRes.P99), "ms")
	return nil
}

// startBare runs the bare server for one file and returns its base URL.
func startBare(ctx context.Context, binary, file, hash string, size int) (*exec.Cmd, string, error) {
	cmd := exec.CommandContext(ctx, binary, "-file", file, "-hash", hash, "-size", strconv.Itoa(size))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", fmt.Errorf("bare server: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start bare server: %w", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, "", fmt.Errorf("bare server did not say where it listens (read %q: %v)", line, err)
	}
	// The server writes nothing more: its stdout pipe needs no reader.
	return cmd, "http://" + addr, nil
}

const storeSection = "Memory and start-up with a full store"

// store generates a store of many small files with the storage package and starts the relay
// on it twice: the first start lets Badger compact the backlog such a burst of writes leaves
// (its peak RSS is reported), the second is the cold start of a settled store, whose RSS is
// read at rest, then during concurrent 1 MiB PUTs.
func (b *bench) store(ctx context.Context) error {
	dir, err := b.newDir("", "store")
	if err != nil {
		return err
	}
	cfg := relayConfig{dir: dir, nodes: b.fleet.nodeMap(b.p.storeNodes), maxUploads: 128}
	start := time.Now()
	sample, err := b.generate(ctx, cfg.dataDir())
	if err != nil {
		return err
	}
	gen := time.Since(start)
	size, err := diskUsage(cfg.dataDir())
	if err != nil {
		return err
	}
	b.log.Info("store generated", "files", b.p.files, "took", gen.Round(time.Millisecond), "disk_MiB", size/mib)
	n := thousands(float64(b.p.files))
	genNote := fmt.Sprintf("%s files of %d bytes spread over %d target nodes, generated directly with the storage package "+
		"(one commit per file, as the PUT handler does, unsynced; %.1f s, %.0f MiB on disk)",
		n, b.p.fileSize, b.p.storeNodes, gen.Seconds(), float64(size)/mib)

	// First start: Badger compacts what the burst left in level 0.
	p, err := startRelay(ctx, b.log, b.relay, cfg)
	if err != nil {
		return err
	}
	busy, err := waitIdle(ctx, p.pid(), time.Minute)
	if err != nil {
		_ = p.stop()
		return err
	}
	first, err := processMemory(p.pid())
	if err := errors.Join(err, p.stop()); err != nil {
		return err
	}
	b.log.Info("store: first start settled", "busy", busy.Round(100*time.Millisecond), "VmHWM_MiB", first.HWM/mib, "anon_MiB", first.Anon/mib)
	b.rep.add(Scenario{Name: "rss_peak_first_start", Section: storeSection, Title: "peak RSS, first start after the files were written", Unit: "MiB",
		Command: fmt.Sprintf("VmHWM once the relay's CPU time stopped growing (%.1f s of start-up work); %s", busy.Seconds(), genNote),
		Note: fmt.Sprintf("Badger compacts the level-0 tables the burst of writes left; the garbage stays resident until the Go runtime "+
			"collects it (every 2 minutes on an idle process) and returns it to the system (RssAnon %.0f MiB when it went idle).",
			float64(first.Anon)/mib)}, float64(first.HWM)/mib)

	// Second start: a settled store, as after a restart.
	p, err = startRelay(ctx, b.log, b.relay, cfg)
	if err != nil {
		return err
	}
	defer p.stop()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	cold := b.rep.add(Scenario{Name: "cold_start", Section: storeSection, Title: "cold start, " + n + " files stored", Unit: "ms",
		Command: "time from exec of `keel-relay run` to the first 200 on GET " + statusPath + " (polled every 2 ms), second start on the store above",
		Note:    "The page cache holds the store (it was just written): a start after a reboot reads it from disk."}, ms(p.startup))
	if b.emptyUp > 0 { // measured by the put scenario
		cold.against("same, empty store", ms(b.emptyUp), "ms")
	}
	// Check the relay serves the generated files before measuring it.
	if _, err := do(ctx, newClient(1), http.MethodHead, p.url+sample, nil, http.StatusOK); err != nil {
		return fmt.Errorf("generated store: %w", err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(b.p.settle):
	}
	rest, err := processMemory(p.pid())
	if err != nil {
		return err
	}
	restCmd := fmt.Sprintf("VmRSS from /proc/PID/status %s after the second start answered, idle, %s files stored", b.p.settle, n)
	b.rep.add(Scenario{Name: "rss_rest", Section: storeSection, Title: "RSS at rest, " + n + " files", Unit: "MiB", Command: restCmd}, float64(rest.RSS)/mib)
	b.rep.add(Scenario{Name: "rss_rest_anon", Section: storeSection, Title: "… of which anonymous (heap, stacks)", Unit: "MiB",
		Command: "RssAnon, same reading"}, float64(rest.Anon)/mib)
	b.rep.add(Scenario{Name: "rss_rest_file", Section: storeSection, Title: "… of which file-backed (mapped Badger files, binary)", Unit: "MiB",
		Command: "RssFile + RssShmem, same reading"}, float64(rest.File)/mib)
	return b.concurrentPuts(ctx, p, rest)
}

// waitIdle waits until pid's CPU time stops growing (less than 30 ms over 2 s), at most limit,
// and returns how long it was busy.
func waitIdle(ctx context.Context, pid int, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	type sample struct {
		at  time.Time
		cpu time.Duration
	}
	var samples []sample
	for {
		cpu, err := cpuTime(pid)
		if err != nil {
			return 0, err
		}
		now := time.Now()
		samples = append(samples, sample{now, cpu})
		for len(samples) > 1 && now.Sub(samples[1].at) >= 2*time.Second {
			samples = samples[1:]
		}
		if old := samples[0]; now.Sub(old.at) >= 2*time.Second && cpu-old.cpu < 30*time.Millisecond {
			return old.at.Sub(start), nil
		}
		if now.Sub(start) > limit {
			return now.Sub(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// generate writes b.p.files small files into a new store in dataDir, as the relay's PUT
// handler would have, and returns the HEAD path of one of them.
func (b *bench) generate(ctx context.Context, dataDir string) (string, error) {
	c := config.Default()
	c.DataDir = dataDir
	opts := relay.StorageOptions(c)
	opts.SyncWrites = false // one sync at the end; the relay would sync each PUT
	st, err := storage.Open(opts, b.log.With("component", "generator"))
	if err != nil {
		return "", err
	}
	content := b.randomContent(b.p.fileSize)
	header, hash, err := b.fleet.signed(nodeID(0), content)
	if err != nil {
		_ = st.Close()
		return "", err
	}
	key := func(i int) storage.FileKey {
		return storage.FileKey{Target: nodeID(i % b.p.storeNodes), Source: nodeID((i + 1) % b.p.storeNodes), ID: fmt.Sprintf("f%06d", i)}
	}
	now := time.Now()
	const workers = 8
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < b.p.files; i += workers {
				if ctx.Err() != nil {
					errs <- ctx.Err()
					return
				}
				u, err := st.NewUpload(int64(len(content)))
				if err == nil {
					_, err = u.Write(content)
					if err != nil {
						u.Abort()
					}
				}
				if err == nil {
					err = st.CommitFile(u, storage.FileMeta{Key: key(i), Header: header, Algorithm: "sha256", Hash: hash,
						Expires: now.Add(24 * time.Hour), Stored: now})
				}
				if err != nil {
					errs <- fmt.Errorf("generate file %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	err = <-errs // the first error, if any
	if serr := st.Sync(); err == nil {
		err = serr
	}
	// As the relay's cleaner does after deletions: this flushes the memtable and compacts
	// level 0, which a burst of writes left full.
	if _, gerr := st.CollectGarbage(ctx); err == nil {
		err = gerr
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	k := key(b.p.files / 2)
	return sharedpath.Path(api, k.Target, k.Source, k.ID) + "?hash=" + hash, nil
}

// concurrentPuts sends rssPuts signed 1 MiB PUTs at once and reads the relay's peak RSS
// (VmHWM, reset before), sampling anonymous and file-backed RSS every 10 ms.
func (b *bench) concurrentPuts(ctx context.Context, p *relayProc, rest memStatus) error {
	body, _, err := b.fleet.body(nodeID(0), b.randomContent(mib))
	if err != nil {
		return err
	}
	peakNote := b.resetPeakNote(p.pid(), "VmHWM reset through /proc/PID/clear_refs before, read after",
		"VmHWM read after (it could not be reset before: it includes the start-up peak)")
	stopSampling := sampleMemory(p.pid())
	client := newClient(b.p.rssPuts)
	errs := make(chan error, b.p.rssPuts)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range b.p.rssPuts {
		wg.Go(func() {
			if _, err := do(ctx, client, http.MethodPut, putURL(p.url, fmt.Sprintf("conc-%d", i), "1h"), body, http.StatusOK); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	peak := stopSampling()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("concurrent PUTs: %w", err)
	}
	end, err := processMemory(p.pid())
	if err != nil {
		return err
	}
	n := strconv.Itoa(b.p.rssPuts)
	cmd := fmt.Sprintf("%s concurrent `PUT %s` (1 MiB signed bodies, one connection each, max_concurrent_uploads and max_uploads_per_client: 128) on the relay above; "+
		"%s", n, putURL("/", "conc-N", "1h")[1:], peakNote)
	b.rep.add(Scenario{Name: "rss_peak_puts", Section: storeSection, Title: "peak RSS during " + n + " concurrent 1 MiB PUTs", Unit: "MiB",
		Command: cmd}, float64(end.HWM)/mib).
		against("goal", 128, "MiB").
		goal("< 128 MiB", end.HWM < 128*mib)
	b.rep.add(Scenario{Name: "rss_peak_puts_anon", Section: storeSection, Title: "… peak anonymous RSS", Unit: "MiB",
		Command: "highest RssAnon sampled every 10 ms during the PUTs; baseline: at rest"}, float64(peak.Anon)/mib).
		against("at rest", float64(rest.Anon)/mib, "MiB")
	b.rep.add(Scenario{Name: "rss_peak_puts_file", Section: storeSection, Title: "… peak file-backed RSS (clean value-log pages)", Unit: "MiB",
		Command: "highest RssFile + RssShmem sampled every 10 ms during the PUTs; baseline: at rest"}, float64(peak.File)/mib).
		against("at rest", float64(rest.File)/mib, "MiB")
	speed := float64(b.p.rssPuts*mib) / took.Seconds()
	b.rep.add(Scenario{Name: "put_concurrent_1mib", Section: storeSection, Title: n + " concurrent 1 MiB PUTs, throughput", Unit: "MB/s",
		Command: "the same PUTs: content bytes / wall time"}, speed/mb).
		against("disk write+fsync of 1 MiB files", b.limits.disk1MiB/mb, "MB/s")
	b.log.Info("concurrent PUTs", "n", b.p.rssPuts, "VmHWM_MiB", end.HWM/mib, "peak_anon_MiB", peak.Anon/mib, "peak_file_MiB", peak.File/mib)
	return nil
}

const remoteSection = "Remote run fan-out"

// remoteRun runs a command sleeping rrSleep on rrNodes nodes at rrConc at a time.
func (b *bench) remoteRun(ctx context.Context) error {
	sleep := strconv.FormatFloat(b.p.rrSleep.Seconds(), 'f', -1, 64)
	command := []string{"/bin/sleep", sleep}
	p, _, err := b.startRelayIn(ctx, "", "remote", relayConfig{nodes: b.fleet.nodeMap(b.p.rrNodes), command: command, concurrency: b.p.rrConc})
	if err != nil {
		return err
	}
	defer p.stop()
	ids := make([]string, b.p.rrNodes)
	for i := range ids {
		ids[i] = nodeID(i)
	}
	form := url.Values{"keep_output": {"false"}, "asynchronous": {"false"}, "nodes": {strings.Join(ids, ",")}}.Encode()
	start := time.Now()
	out, err := do(ctx, newClient(1), http.MethodPost, p.url+api+"/remote-run/nodes", []byte(form), http.StatusOK)
	wall := time.Since(start)
	if err != nil {
		return err
	}
	var sumMS int64
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var res struct {
			Node       string `json:"node"`
			ExitCode   int    `json:"exit_code"`
			DurationMS int64  `json:"duration_ms"`
			Stderr     string `json:"stderr"`
		}
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			return fmt.Errorf("remote run: answer line %q: %w", tail(line, 200), err)
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("remote run: node %s exited %d: %s", res.Node, res.ExitCode, res.Stderr)
		}
		seen[res.Node] = true
		sumMS += res.DurationMS
	}
	if len(seen) != b.p.rrNodes {
		return fmt.Errorf("remote run: %d result lines, want %d", len(seen), b.p.rrNodes)
	}
	ideal := float64(b.p.rrNodes) / float64(b.p.rrConc) * b.p.rrSleep.Seconds()
	n := thousands(float64(b.p.rrNodes))
	b.rep.add(Scenario{Name: "remote_run", Section: remoteSection,
		Title: fmt.Sprintf("%s nodes × %s s command, concurrency %d", n, sleep, b.p.rrConc), Unit: "s",
		Command: fmt.Sprintf("POST %s/remote-run/nodes keep_output=false asynchronous=false nodes=(%s ids), "+
			"remote_run.command [\"/bin/sleep\", %q], remote_run.concurrency %d; wall time of the call", api, n, sleep, b.p.rrConc),
		Note: fmt.Sprintf("Mean node run as the relay reports it: %.0f ms.", float64(sumMS)/float64(b.p.rrNodes))}, wall.Seconds()).
		against(fmt.Sprintf("ideal %s / %d × %s s", n, b.p.rrConc, sleep), ideal, "s").
		goal("≤ 1.2× ideal", wall.Seconds() <= 1.2*ideal)
	b.log.Info("remote run", "nodes", b.p.rrNodes, "wall", wall.Round(time.Millisecond), "ideal_s", ideal)
	return nil
}

const expirySection = "Disk space returned after expiry"

// expiry stores expiryFiles files of expirySize with a short TTL on a relay whose cleaner runs
// every second, and follows the data directory's size until it stops falling.
func (b *bench) expiry(ctx context.Context) error {
	p, _, err := b.startRelayIn(ctx, "", "expiry", relayConfig{nodes: b.fleet.nodeMap(2), cleanup: time.Second})
	if err != nil {
		return err
	}
	defer p.stop()
	cfg := p.cfg
	time.Sleep(time.Second) // the cleaner's first run
	before, err := diskUsage(cfg.dataDir())
	if err != nil {
		return err
	}
	total := b.p.expiryFiles * b.p.expirySize
	// The TTL covers the time all files take to arrive (from the 64 MiB PUT speed, or half the
	// disk's when the put scenario did not run), so they are all stored before the first expires.
	rate := b.put64
	if rate == 0 {
		rate = b.limits.disk64MiB / 2
	}
	estimate := time.Duration(float64(total) / max(rate, 10*mb) * float64(time.Second))
	ttl := max(2*time.Second, (2*estimate + 2*time.Second).Round(time.Second))
	body, hash, err := b.fleet.body(nodeID(0), b.randomContent(b.p.expirySize))
	if err != nil {
		return err
	}
	client := newClient(1)
	first := time.Now()
	for i := range b.p.expiryFiles {
		u := putURL(p.url, fmt.Sprintf("exp-%d", i), strconv.Itoa(int(ttl.Seconds())))
		if _, err := do(ctx, client, http.MethodPut, u, body, http.StatusOK); err != nil {
			return err
		}
	}
	stored, err := diskUsage(cfg.dataDir())
	if err != nil {
		return err
	}
	storing := time.Since(first)
	if storing >= ttl {
		b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("Expiry: storing took %s, longer than the TTL of %s: some files expired before the last was stored.", storing.Round(time.Millisecond), ttl))
	}
	label := fmt.Sprintf("%d × %d MiB", b.p.expiryFiles, b.p.expirySize/mib)
	b.log.Info("expiry: stored", "files", label, "ttl", ttl, "took", storing.Round(time.Millisecond), "disk_MiB", stored/mib)
	// Wait for the last file to expire, then follow the size.
	expired := time.Now().Add(ttl - storing)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(expired)):
	}
	series := []Point{}
	lowest, lowestAt, final := stored, time.Duration(0), stored
	for {
		since := time.Since(expired)
		size, err := diskUsage(cfg.dataDir())
		if err != nil {
			return err
		}
		final = size
		series = append(series, Point{T: math.Round(since.Seconds()*10) / 10, V: math.Round(float64(size)/mib*10) / 10})
		if size < lowest {
			lowest, lowestAt = size, since
		}
		if since-lowestAt >= b.p.plateau || since >= b.p.expiryMax {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if _, err := do(ctx, newClient(1), http.MethodHead, p.url+sharedpath.Path(api, nodeID(1), nodeID(0), "exp-0")+"?hash="+hash, nil, http.StatusNotFound); err != nil {
		return fmt.Errorf("expiry: the first file should be gone: %w", err)
	}
	if b.rep.Series == nil {
		b.rep.Series = map[string][]Point{}
	}
	b.rep.Series["expiry_disk_mib"] = series
	fmib := func(n int64) float64 { return float64(n) / mib }
	cmd := fmt.Sprintf("%s signed files PUT with ?ttl=%d, shared_files.cleanup_interval: 1s; du (allocated blocks) of data_dir", label, int(ttl.Seconds()))
	b.rep.add(Scenario{Name: "expiry_disk_before", Section: expirySection, Title: "store on disk, empty", Unit: "MiB",
		Command: cmd + ", after start-up"}, fmib(before))
	b.rep.add(Scenario{Name: "expiry_disk_stored", Section: expirySection, Title: "… with " + label + " stored", Unit: "MiB",
		Command: cmd + ", after the last PUT"}, fmib(stored)).
		against("content stored", float64(total)/mib, "MiB")
	b.rep.add(Scenario{Name: "expiry_disk_after", Section: expirySection, Title: "… after they expired and the cleaner ran", Unit: "MiB",
		Command: fmt.Sprintf("%s, polled every second from the last expiry until it had not fallen for %s (at most %s); series in report.json",
			cmd, b.p.plateau, b.p.expiryMax)}, fmib(final)).
		against("with the files stored", fmib(stored), "MiB")
	b.rep.add(Scenario{Name: "expiry_disk_returned", Section: expirySection, Title: "space returned", Unit: "MiB",
		Command: "stored − after; the value-log file being written to (up to storage.value_log_file_size, 64 MiB) is never rewritten"}, fmib(stored-final)).
		against("space the files took (stored − empty)", fmib(stored-before), "MiB")
	b.rep.add(Scenario{Name: "expiry_time", Section: expirySection, Title: "time from expiry to the lowest size", Unit: "s",
		Command: "seconds from the last file's expiry to the last fall of the size"}, lowestAt.Seconds())
	b.log.Info("expiry: after", "before_MiB", before/mib, "stored_MiB", stored/mib, "after_MiB", final/mib, "lowest_at", lowestAt.Round(time.Second))
	return nil
}
