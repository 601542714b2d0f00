//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keel-relay/keel/edge/admin"
	"github.com/keel-relay/keel/edge/keys"
	"github.com/keel-relay/keel/relay/config"
)

const edgeSection = "Edge (gRPC) API"

// metric reads the admin listener's /metrics and returns the sum of the samples of name
// (every label set).
func metric(ctx context.Context, adminAddr, name string) (float64, error) {
	b, err := do(ctx, newClient(1), http.MethodGet, "http://"+adminAddr+"/metrics", nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %q: %w", name, line, err)
		}
		sum += v
	}
	return sum, nil
}

// waitStreams polls keel_edge_streams until it reaches n and returns when it did.
func waitStreams(ctx context.Context, adminAddr string, n int, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	last := -1.0
	for {
		v, err := metric(ctx, adminAddr, "keel_edge_streams")
		if err == nil && v >= float64(n) {
			return time.Now(), nil
		}
		if err == nil {
			last = v
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%v of %d edge streams after %s (last error: %v)", last, n, limit, err)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// loadStats are edgeload run's counters.
type loadStats struct {
	Connects    int64          `json:"connects"`
	Up          int64          `json:"up"`
	Unavailable int64          `json:"unavailable"`
	Errors      int64          `json:"errors"`
	ErrorCodes  map[string]int `json:"error_codes"`
	FirstError  string         `json:"first_error"`
	Invokes     int64          `json:"invokes"`
}

// loadProc is a running `edgeload run`.
type loadProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	mu    sync.Mutex
	ended chan struct{}
}

func startLoad(ctx context.Context, binary, edgeAddr, ids string) (*loadProc, error) {
	cmd := exec.CommandContext(ctx, binary, "run", "-edge", edgeAddr, "-ids", ids)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start edgeload: %w", err)
	}
	p := &loadProc{cmd: cmd, in: in, out: bufio.NewScanner(out), ended: make(chan struct{})}
	return p, nil
}

func (p *loadProc) stats() (loadStats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.in, "stats\n"); err != nil {
		return loadStats{}, fmt.Errorf("edgeload stats: %w", err)
	}
	if !p.out.Scan() {
		return loadStats{}, fmt.Errorf("edgeload stats: no answer (%v)", p.out.Err())
	}
	var s loadStats
	if err := json.Unmarshal(p.out.Bytes(), &s); err != nil {
		return loadStats{}, fmt.Errorf("edgeload stats %q: %w", p.out.Text(), err)
	}
	return s, nil
}

// stop ends edgeload (end of its input) and waits for it, killing it after 30 s.
func (p *loadProc) stop() error {
	_ = p.in.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("edgeload did not stop within 30s; killed: %w", <-done)
	}
}

// kill ends the relay at once (SIGKILL), as a crash would.
func (p *relayProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// edge measures the edge API with edgeN daemons played by edgeload (a second process): the
// relay's RSS per idle ConnectEdge stream, InvokeTool round trips/s through the admin API
// against a bare gRPC unary call, and a reconnect storm after the relay is killed.
func (b *bench) edge(ctx context.Context) error {
	n := b.p.edgeN
	dir, err := b.newDir("", "edge")
	if err != nil {
		return err
	}
	listeners, err := newEdgeListeners(n)
	if err != nil {
		return err
	}
	edgeAddr, adminAddr := listeners.edge, listeners.admin
	cfg := relayConfig{dir: dir, nodes: b.fleet.nodeMap(2), edge: listeners}
	ns := thousands(float64(n))

	ids, took, err := b.enroll(ctx, cfg, n)
	if err != nil {
		return err
	}
	b.rep.add(Scenario{Name: "edge_enroll_rate", Section: edgeSection, Title: "enrollments per second (" + ns + " daemons)", Unit: "/s",
		Command: fmt.Sprintf("`edgeload enroll -n %d -c 64`: AttestNode + ChallengeNode per daemon with an enrollment token signed by the relay's "+
			"edge-signing.key, 64 at once, each a synced Badger transaction redeeming the jti", n)}, float64(n)/took)

	// RSS per idle stream, on a fresh relay process.
	p, err := startRelay(ctx, b.log, b.relay, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = p.stop() }() // p changes below: the last one is stopped
	if err := sleepCtx(ctx, b.p.settle); err != nil {
		return err
	}
	before, err := processMemory(p.pid())
	if err != nil {
		return err
	}
	load, err := startLoad(ctx, b.edgeload, edgeAddr, ids)
	if err != nil {
		return err
	}
	defer func() { _ = load.stop() }()
	start := time.Now()
	up, err := waitStreams(ctx, adminAddr, n, 10*time.Minute)
	if err != nil {
		return fmt.Errorf("connect %d daemons: %w", n, err)
	}
	connect := up.Sub(start)
	b.rep.add(Scenario{Name: "edge_connect_rate", Section: edgeSection, Title: "ConnectEdge stream set-ups per second (" + ns + " daemons)", Unit: "/s",
		Command: "from the start of `edgeload run` (one TCP connection, ConnectEdge stream and sealed Hello per daemon) to keel_edge_streams reaching " + ns +
			" on the relay's /metrics (polled every 50 ms)"}, float64(n)/connect.Seconds())
	if err := sleepCtx(ctx, b.p.settle); err != nil {
		return err
	}
	after, err := processMemory(p.pid())
	if err != nil {
		return err
	}
	perStream := float64(after.RSS-before.RSS) / float64(n) / 1024
	b.log.Info("edge: streams up", "n", n, "connect", connect.Round(time.Millisecond), "rss_before_MiB", before.RSS/mib, "rss_after_MiB", after.RSS/mib, "KiB_per_stream", math.Round(perStream*10)/10)
	rssCmd := fmt.Sprintf("relay VmRSS %s after all %s streams are up minus VmRSS of the same relay process before the first one "+
		"(idle, %s after start), divided by %s; plaintext gRPC on loopback, one connection per daemon, heartbeat every 30 s", b.p.settle, ns, b.p.settle, ns)
	b.rep.add(Scenario{Name: "edge_streams_rss", Section: edgeSection, Title: "RSS per idle ConnectEdge stream (" + ns + " streams)", Unit: "KiB",
		Command: rssCmd, Note: fmt.Sprintf("VmRSS %.0f MiB before, %.0f MiB after (RssAnon %.0f → %.0f MiB).",
			float64(before.RSS)/mib, float64(after.RSS)/mib, float64(before.Anon)/mib, float64(after.Anon)/mib)}, perStream).
		against("goal", 60, "KiB").
		goal("≤ 60 KiB/stream", perStream <= 60)

	if err := b.edgeInvokes(ctx, adminAddr, n); err != nil {
		return err
	}

	// Reconnect storm: kill -9 the relay with every daemon connected, start it again.
	b.log.Info("edge: reconnect storm", "daemons", n)
	killed := time.Now()
	p.kill()
	p, err = startRelay(ctx, b.log, b.relay, cfg)
	if err != nil {
		return err
	}
	ready := time.Now()
	back, err := waitStreams(ctx, adminAddr, n, 10*time.Minute)
	if err != nil {
		return fmt.Errorf("reconnect storm: %w", err)
	}
	stats, err := load.stats()
	if err != nil {
		return err
	}
	refused, err := metric(ctx, adminAddr, "keel_edge_refusals_total")
	if err != nil {
		return err
	}
	errorsSeen := float64(stats.Errors) + refused
	b.log.Info("edge: storm absorbed", "from_kill", back.Sub(killed).Round(time.Millisecond), "from_ready", back.Sub(ready).Round(time.Millisecond),
		"daemon_errors", stats.Errors, "relay_refusals", refused, "unavailable", stats.Unavailable, "first_error", stats.FirstError)
	stormCmd := fmt.Sprintf("kill -9 of the relay with %s daemons connected, then `keel-relay run` again on the same data dir and ports; "+
		"each daemon reconnects on its own connection with exponential backoff (250 ms doubling to 8 s) and full jitter; "+
		"time from the restarted relay answering its status route to keel_edge_streams = %s", ns, ns)
	b.rep.add(Scenario{Name: "edge_reconnect_storm", Section: edgeSection, Title: "reconnect storm: all " + ns + " daemons back", Unit: "s",
		Command: stormCmd, Note: fmt.Sprintf("%.2f s from the kill (the relay was answering again %.0f ms after it).", back.Sub(killed).Seconds(),
			float64(ready.Sub(killed))/float64(time.Millisecond))},
		back.Sub(ready).Seconds())
	note := "Unavailable answers while the relay was down are expected and not counted: " + strconv.FormatInt(stats.Unavailable, 10) + "."
	if stats.FirstError != "" {
		note += " First error: " + tail(stats.FirstError, 200) + " (codes " + fmt.Sprint(stats.ErrorCodes) + ")."
	}
	b.rep.add(Scenario{Name: "edge_reconnect_errors", Section: edgeSection, Title: "… errors during the storm", Unit: "errors",
		Command: "stream or connect errors other than Unavailable seen by the daemons (edgeload) + keel_edge_refusals_total of the restarted relay",
		Note:    note}, errorsSeen).
		goal("no error", errorsSeen == 0)
	return nil
}

// enroll starts a relay with cfg (its edge listeners set), enrolls n daemons into it with
// `edgeload enroll`, stops it, and returns the identities file and the seconds enrollment took.
func (b *bench) enroll(ctx context.Context, cfg relayConfig, n int) (string, float64, error) {
	p, err := startRelay(ctx, b.log, b.relay, cfg)
	if err != nil {
		return "", 0, err
	}
	ids := filepath.Join(cfg.dir, "identities.jsonl")
	keyFile := filepath.Join(cfg.dataDir(), keys.FileName)
	enrollCmd := exec.CommandContext(ctx, b.edgeload, "enroll", "-edge", cfg.edge.edge, "-key", keyFile,
		"-issuer", keys.Issuer(config.Default().NodeID), "-n", strconv.Itoa(n), "-c", "64", "-out", ids)
	enrollCmd.Stderr = os.Stderr
	out, err := enrollCmd.Output()
	if err := errors.Join(err, p.stop()); err != nil {
		return "", 0, fmt.Errorf("enroll %d daemons: %w", n, err)
	}
	var enrolled struct {
		Took float64 `json:"took_s"`
	}
	if err := json.Unmarshal(out, &enrolled); err != nil {
		return "", 0, fmt.Errorf("edgeload enroll said %q: %w", out, err)
	}
	b.log.Info("edge: enrolled", "daemons", n, "took_s", math.Round(enrolled.Took*10)/10)
	return ids, enrolled.Took, nil
}

// edgeInvokes measures InvokeTool round trips per second through the admin API: fleet
// commands on every daemon (selected by the label edgeload declares), 4 at once, each with
// parallelism 256, against a bare gRPC unary call measured the same way.
func (b *bench) edgeInvokes(ctx context.Context, adminAddr string, n int) error {
	const fleets, parallel = 4, 256
	body := fmt.Sprintf(`{"labels":{"bench":"edgeload"},"tool":"echo","parallel":%d,"timeout":"1m"}`, parallel)
	client := newClient(fleets)
	one := func() (int, error) {
		resp, err := do(ctx, client, http.MethodPost, "http://"+adminAddr+"/edge/invoke", []byte(body), http.StatusOK)
		if err != nil {
			return 0, err
		}
		count := 0
		for _, line := range strings.Split(string(resp), "\n") {
			if !strings.HasPrefix(line, "{") {
				continue
			}
			var r admin.Result
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return count, fmt.Errorf("invoke result %q: %w", line, err)
			}
			if r.Failed() {
				return count, fmt.Errorf("invoke on %s failed: %+v", r.Node, r)
			}
			count++
		}
		if count != n {
			return count, fmt.Errorf("invoke: %d results, want %d", count, n)
		}
		return count, nil
	}
	if _, err := one(); err != nil { // warm-up
		return err
	}
	rounds := max(1, (b.p.edgeInvokes+n-1)/n)
	var total int
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan struct{}, rounds)
	for range rounds {
		next <- struct{}{}
	}
	close(next)
	start := time.Now()
	for range fleets {
		wg.Go(func() {
			for range next {
				c, err := one()
				mu.Lock()
				total += c
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if firstErr != nil {
		return firstErr
	}
	rate := float64(total) / took.Seconds()

	out, err := exec.CommandContext(ctx, b.edgeload, "baseline", "-n", strconv.Itoa(max(total, 20000)), "-c", strconv.Itoa(fleets*parallel)).Output()
	if err != nil {
		return fmt.Errorf("edgeload baseline: %w", err)
	}
	var base struct {
		RPS float64 `json:"rps"`
	}
	if err := json.Unmarshal(out, &base); err != nil {
		return fmt.Errorf("edgeload baseline said %q: %w", out, err)
	}
	b.log.Info("edge: InvokeTool", "round_trips", total, "per_s", math.Round(rate), "baseline_per_s", math.Round(base.RPS))
	b.rep.add(Scenario{Name: "edge_invoke_rps", Section: edgeSection, Title: "InvokeTool round trips per second (admin API)", Unit: "/s",
		Command: fmt.Sprintf("%d `POST /edge/invoke` fleet commands, %d at once, each on all %s daemons (label bench=edgeload) with parallelism %d "+
			"and an echo tool answered at once by edgeload: %s round trips (InvokeTool sent, CommandResult verified and routed back, "+
			"one JSON result line streamed) over the wall time, after one warm-up command; baseline: `edgeload baseline`, a grpc.health.v1 "+
			"Check unary call between a client and a server in one process on loopback, %d at once",
			rounds, fleets, thousands(float64(n)), parallel, thousands(float64(total)), fleets*parallel)}, rate).
		against("bare gRPC unary call", base.RPS, "/s").
		goal("≥ 5,000/s", rate >= 5000)
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
