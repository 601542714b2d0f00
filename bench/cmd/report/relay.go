//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/keel-relay/keel/internal/wire/keyhash"
	"github.com/keel-relay/keel/internal/wire/sigblock"
)

// statusPath is the route polled to know the relay is up.
const statusPath = "/rudder/relay-api/1/system/status"

// fleet is the node map the benchmarks use: "root" and nodes n0000, n0001, ... under it, all
// pinning one RSA key, so any of them can be the source of a signed shared file.
type fleet struct {
	key   *rsa.PrivateKey
	pin   string
	nodes int
}

func newFleet(nodes int) (*fleet, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate RSA key: %w", err)
	}
	pin, err := keyhash.Of(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &fleet{key: key, pin: pin.String(), nodes: nodes}, nil
}

func nodeID(i int) string { return fmt.Sprintf("n%04d", i) }

func hostname(id string) string { return id + ".bench.test" }

// nodeMap returns the node map JSON with the first n nodes (the bare-object shape).
func (f *fleet) nodeMap(n int) []byte {
	m := map[string]map[string]string{"root": {"hostname": hostname("root"), "policy-server": "root", "key-hash": f.pin}}
	for i := range n {
		id := nodeID(i)
		m[id] = map[string]string{"hostname": hostname(id), "policy-server": "root", "key-hash": f.pin}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	return b
}

// signed returns the signature block (without its closing empty line) of content, signed
// with sha256 as node source, and the hex hash of content.
func (f *fleet) signed(source string, content []byte) (header []byte, hash string, err error) {
	block, err := sigblock.Sign(f.key, "sha256", bytes.NewReader(content), hostname(source), "2026-01-01", "BENCH", "1d")
	if err != nil {
		return nil, "", fmt.Errorf("sign %d bytes as %s: %w", len(content), source, err)
	}
	return block.Raw, block.HashValue, nil
}

// body returns a PUT body: the signature block, an empty line, content.
func (f *fleet) body(source string, content []byte) ([]byte, string, error) {
	header, hash, err := f.signed(source, content)
	if err != nil {
		return nil, "", err
	}
	b := make([]byte, 0, len(header)+1+len(content))
	b = append(append(append(b, header...), '\n'), content...)
	return b, hash, nil
}

// relayConfig is what varies between the relays the benchmarks start.
type relayConfig struct {
	dir         string // holds data/, relay.yaml, nodes.json and relay.log
	nodes       []byte
	maxUploads  int
	cleanup     time.Duration // shared_files.cleanup_interval; 0 = default
	command     []string      // remote_run.command; nil = default
	concurrency int           // remote_run.concurrency; 0 = default
	// edge, when set, enables the edge API and the admin listener at fixed addresses (kept
	// across restarts); otherwise both are off.
	edge *edgeListeners
	// plain keeps the packaged defaults for everything but where the files and listeners are
	// (and the log level): no max_body, no edge limits raised. The other fields still apply.
	plain bool
	// cgroup, when set, is the directory of a cgroup the relay runs in from its first
	// instruction: a shell puts itself there (writes its pid to cgroup.procs), then execs it.
	cgroup string
	// extra is YAML appended to the config file as is: keys and sections the fields above do
	// not write (the relay-box scenario's role, upstream and agent_uploads).
	extra string
}

// edgeListeners are the addresses of an edge relay, and the streams it must hold (with
// enrollment limits raised to enroll them quickly); streams 0 keeps the default limits.
type edgeListeners struct {
	edge, admin string
	streams     int
}

// newEdgeListeners picks free loopback addresses for the edge and admin listeners of a
// relay that allows streams ConnectEdge streams.
func newEdgeListeners(streams int) (*edgeListeners, error) {
	edge, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return &edgeListeners{edge: edge, admin: admin, streams: streams}, nil
}

func (c relayConfig) dataDir() string { return filepath.Join(c.dir, "data") }

// yaml renders the config file for an API listening on api. The admin listener and the edge
// API are off unless c.edge is set, the log at warn level (the request log is info), bodies up to 1 GiB.
func (c relayConfig) yaml(api string) string {
	var b strings.Builder
	q := func(s string) string { j, _ := json.Marshal(s); return string(j) } // JSON strings are YAML strings
	fmt.Fprintf(&b, "data_dir: %s\nnodes_file: %s\nlog:\n  level: warn\nhttp:\n  listen: %s\n",
		q(c.dataDir()), q(filepath.Join(c.dir, "nodes.json")), q(api))
	if !c.plain {
		b.WriteString("  max_body: 1GiB\n")
	}
	if c.maxUploads > 0 { // the load comes from one address: it may take every slot
		fmt.Fprintf(&b, "  max_concurrent_uploads: %d\n  max_uploads_per_client: %d\n", c.maxUploads, c.maxUploads)
	}
	if c.edge == nil {
		b.WriteString("admin:\n  listen: \"\"\nedge:\n  enabled: false\n")
	} else {
		fmt.Fprintf(&b, "admin:\n  listen: %s\nedge:\n  enabled: true\n  listen: %s\n", q(c.edge.admin), q(c.edge.edge))
		if c.edge.streams > 0 {
			fmt.Fprintf(&b, "  attest_per_minute: 10000\n  max_pending_challenges: 100000\n  max_streams: %d\n", c.edge.streams+1000)
		}
	}
	if c.cleanup > 0 {
		fmt.Fprintf(&b, "shared_files:\n  cleanup_interval: %s\n", c.cleanup)
	}
	if c.command != nil || c.concurrency > 0 {
		b.WriteString("remote_run:\n")
		if c.command != nil {
			parts := make([]string, len(c.command))
			for i, a := range c.command {
				parts[i] = q(a)
			}
			fmt.Fprintf(&b, "  command: [%s]\n", strings.Join(parts, ", "))
		}
		if c.concurrency > 0 {
			fmt.Fprintf(&b, "  concurrency: %d\n", c.concurrency)
		}
	}
	b.WriteString(c.extra)
	return b.String()
}

// relayProc is a running keel-relay.
type relayProc struct {
	cmd     *exec.Cmd
	url     string
	cfg     relayConfig
	logPath string
	// startup is the time from starting the process to its first 200 on the status route.
	startup time.Duration
	exited  chan struct{}
}

// startRelay writes cfg's files and runs the relay until it answers 200 on the status route.
// A port taken by someone else between its choice and the relay's bind is retried.
func startRelay(ctx context.Context, log *slog.Logger, binary string, cfg relayConfig) (*relayProc, error) {
	if err := os.MkdirAll(cfg.dir, 0o755); err != nil {
		return nil, fmt.Errorf("relay dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(cfg.dir, "nodes.json"), cfg.nodes, 0o644); err != nil {
		return nil, fmt.Errorf("write node map: %w", err)
	}
	var lastErr error
	for range 3 {
		p, err := tryStart(ctx, binary, cfg)
		if err == nil {
			log.Info("relay started", "dir", cfg.dir, "url", p.url, "startup", p.startup.Round(time.Millisecond))
			return p, nil
		}
		lastErr = err
		if ctx.Err() != nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func tryStart(ctx context.Context, binary string, cfg relayConfig) (*relayProc, error) {
	api, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(cfg.dir, "relay.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.yaml(api)), 0o644); err != nil {
		return nil, fmt.Errorf("write relay config: %w", err)
	}
	logPath := filepath.Join(cfg.dir, "relay.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("relay log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(binary, "run", "--config", cfgPath)
	if cfg.cgroup != "" {
		// The shell joins the cgroup, then becomes the relay (same pid): nothing of the relay
		// runs outside it.
		cmd = exec.Command("/bin/sh", "-c", `echo $$ > "$1" && shift && exec "$@"`, "sh",
			filepath.Join(cfg.cgroup, "cgroup.procs"), binary, "run", "--config", cfgPath)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p := &relayProc{cmd: cmd, url: "http://" + api, cfg: cfg, logPath: logPath, exited: make(chan struct{})}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := client.Get(p.url + statusPath)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.startup = time.Since(start)
				return p, nil
			}
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("relay in %s exited before answering: %s", cfg.dir, p.logTail())
		case <-ctx.Done():
			_ = p.stop()
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.stop()
			return nil, fmt.Errorf("relay in %s did not answer %s within 2m: %s", cfg.dir, statusPath, p.logTail())
		}
	}
}

// stop drains the relay (SIGINT) and kills it if it has not exited within 30 s.
func (p *relayProc) stop() error { return p.stopWith(os.Interrupt) }

// stopWith drains the relay with sig (SIGINT or SIGTERM) and kills it if it has not exited
// within 30 s.
func (p *relayProc) stopWith(sig os.Signal) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal relay %d: %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		return fmt.Errorf("relay %d did not stop within 30s after %v; killed", p.cmd.Process.Pid, sig)
	}
}

func (p *relayProc) pid() int { return p.cmd.Process.Pid }

// logTail returns the end of the relay's log, for error messages.
func (p *relayProc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return tail(string(b), 2000)
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// newClient returns the benchmark's HTTP client: keep-alive connections, at most conns per
// host, no proxy.
func newClient(conns int) *http.Client {
	return &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
		Proxy: nil, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
	}}
}

// do sends one request and fails unless the answer is want.
func do(ctx context.Context, client *http.Client, method, url string, body []byte, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, url, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, tail(string(b), 300))
	}
	return b, nil
}
