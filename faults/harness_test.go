package faults

// The harness: TestMain builds keel-relay and keel-agent once; a test writes a YAML config,
// starts the relay on free loopback ports, waits for /system/status to answer 200, and kills
// it when it wants.
// It is a small copy of cmd/keel-relay's harness (a _test.go file of package main, which
// cannot be imported).

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/reqauth"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/relaytest"
)

// enableEnv must be set to a non-empty value for the fault tests to run.
const enableEnv = "KEEL_FAULT_TESTS"

// relayBin and agentBin are the keel-relay and keel-agent binaries TestMain builds; they
// are set once, before any test runs, and only read afterwards ("" when the fault tests
// are not enabled).
var relayBin, agentBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	if os.Getenv(enableEnv) == "" {
		return m.Run() // every test skips itself
	}
	dir, err := os.MkdirTemp("", "keel-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, b := range []struct {
		bin *string
		cmd string
	}{{&relayBin, "keel-relay"}, {&agentBin, "keel-agent"}} {
		out := filepath.Join(dir, b.cmd)
		build := exec.Command("go", "build", "-o", out, "github.com/keel-relay/keel/cmd/"+b.cmd)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "faults: go build ./cmd/%s: %v\n", b.cmd, err)
			return 1
		}
		*b.bin = out
	}
	return m.Run()
}

// needBinary skips the test unless the fault tests are enabled.
func needBinary(t *testing.T) {
	t.Helper()
	if relayBin == "" {
		t.Skipf("fault tests run with `make test-faults` (%s=1)", enableEnv)
	}
}

// settings are config keys, "key" or "section.key", and their YAML values as written.
type settings map[string]string

// baseSettings is the config of a test relay: loopback ports, no node map polling, fast
// shutdown, info logs.
func baseSettings(nodeID, dataDir, nodesFile, api, admin string) settings {
	return settings{
		"node_id":                       nodeID,
		"role":                          "root",
		"data_dir":                      fmt.Sprintf("%q", dataDir),
		"nodes_file":                    fmt.Sprintf("%q", nodesFile),
		"nodes_poll_interval":           "0s",
		"shutdown_grace":                "5s",
		"log.level":                     "info",
		"http.listen":                   api,
		"admin.listen":                  admin,
		"edge.enabled":                  "false", // several relays run at once: no fixed edge port
		"shared_files.cleanup_interval": "1h",
		"forward.allow_http":            "true",
		"forward.sub_relay_url":         `"http://{hostname}"`,
	}
}

// writeConfig writes s as dir/name and returns the path.
func writeConfig(t testing.TB, dir, name string, s settings) string {
	t.Helper()
	sections := map[string][]string{}
	var top []string
	for k, v := range s {
		if sec, key, ok := strings.Cut(k, "."); ok {
			sections[sec] = append(sections[sec], fmt.Sprintf("  %s: %s\n", key, v))
		} else {
			top = append(top, fmt.Sprintf("%s: %s\n", k, v))
		}
	}
	slices.Sort(top)
	var b strings.Builder
	for _, line := range top {
		b.WriteString(line)
	}
	for _, sec := range slices.Sorted(maps.Keys(sections)) {
		lines := sections[sec]
		slices.Sort(lines)
		b.WriteString(sec + ":\n")
		for _, line := range lines {
			b.WriteString(line)
		}
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// proc is a running keel-relay.
type proc struct {
	name  string
	cmd   *exec.Cmd
	out   *relaytest.SyncBuffer
	done  chan struct{}
	api   string       // API base URL
	admin string       // admin base URL
	ready *http.Client // what waitReady asks the API with
	// ended is set when the test itself stopped or killed the process: its output is not
	// worth logging then.
	ended atomic.Bool
}

// startRelay runs `keel-relay run --config cfg` and waits until its API answers the status
// endpoint (see waitReady). The process is killed when the test ends; its output is logged if the
// test failed.
func startRelay(t testing.TB, name, cfg, api, admin string) *proc {
	t.Helper()
	return startRelayAt(t, name, cfg, "http://"+api, admin, newClient(time.Second))
}

// startRelayTLS is startRelay for a relay whose API listener speaks TLS (http.tls_cert): its
// API base URL is https://api, and readiness is checked without verifying its certificate.
func startRelayTLS(t testing.TB, name, cfg, api, admin string) *proc {
	t.Helper()
	insecure := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, Proxy: nil, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // only "is it up?"
	}}
	return startRelayAt(t, name, cfg, "https://"+api, admin, insecure)
}

// startRelayAt runs the relay and waits until c gets an answer from the status endpoint of
// its API at apiURL.
func startRelayAt(t testing.TB, name, cfg, apiURL, admin string, c *http.Client) *proc {
	t.Helper()
	cmd := exec.Command(relayBin, "run", "--config", cfg)
	cmd.Env = withoutKeelEnv()
	out := &relaytest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan struct{}), api: apiURL, admin: "http://" + admin, ready: c}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() && !p.ended.Load() {
			t.Logf("--- output of %s (pid %d) ---\n%s", name, cmd.Process.Pid, tail(out.String(), 200))
		}
	})
	p.waitReady(t)
	return p
}

// withoutKeelEnv is the test's environment without KEEL_* variables: the config file alone
// decides.
func withoutKeelEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) <= n {
		return s
	}
	return fmt.Sprintf("[%d lines before]\n", len(lines)-n) + strings.Join(lines[len(lines)-n:], "\n")
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) waitReady(t testing.TB) {
	t.Helper()
	c := p.ready
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("%s exited before it was ready (%s):\n%s", p.name, p.cmd.ProcessState, tail(p.out.String(), 100))
		}
		resp, err := c.Get(p.api + "/rudder/relay-api/1/system/status")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// 503 is a relay up and saying it is not healthy (a full disk, at start).
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusServiceUnavailable {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 30s:\n%s", p.name, tail(p.out.String(), 100))
}

func (p *proc) wait(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s", p.name, timeout)
	}
}

// kill9 sends SIGKILL and waits until the process is gone.
func (p *proc) kill9(t testing.TB) {
	t.Helper()
	p.ended.Store(true)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL %s: %v", p.name, err)
	}
	p.wait(t, 10*time.Second)
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	p.ended.Store(true)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	p.wait(t, 30*time.Second)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("%s exited with %s after SIGTERM:\n%s", p.name, p.cmd.ProcessState, tail(p.out.String(), 100))
	}
}

func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// newClient returns a client that opens a connection per request: a relay killed with
// SIGKILL leaves no stale pooled connection behind.
func newClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
}

// filesURL is the URL of a shared file on the relay at base.
func filesURL(base, target, source, id string) string {
	return base + "/rudder/relay-api/1/shared-files/" + target + "/" + source + "/" + id
}

// filesPath is the path a next hop sees for a delivered file.
func filesPath(target, source, id string) string {
	return "/rudder/relay-api/1/shared-files/" + target + "/" + source + "/" + id
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// content returns size bytes determined by seed, so a file's content can be produced again
// instead of being kept.
func content(seed uint64, size int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, size)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// logUniform returns a size between lo and hi, uniform in log scale: many small files, some
// large ones.
func logUniform(rng *rand.Rand, lo, hi int) int {
	return int(float64(lo) * math.Exp(rng.Float64()*math.Log(float64(hi)/float64(lo))))
}

// do sends a request and returns the status code and body; it never calls t.Fatal, so it
// may run in any goroutine.
func do(c *http.Client, method, url string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// getSigned downloads a file as its target node. It returns the status, the whole body and
// the ETag; err is set when the body could not be read to its end (a torn file).
func getSigned(c *http.Client, base string, target *relaytest.Node, source, id string) (int, []byte, string, error) {
	req, err := http.NewRequest(http.MethodGet, filesURL(base, target.ID, source, id), nil)
	if err != nil {
		return 0, nil, "", err
	}
	if err := reqauth.Sign(req, target.ID, target.Key, time.Now()); err != nil {
		return 0, nil, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header.Get("ETag"), err
}

// headHash asks whether the relay holds the file with the given hash.
func headHash(c *http.Client, base, target, source, id, hash string) (int, error) {
	code, _, err := do(c, http.MethodHead, filesURL(base, target, source, id)+"?hash="+hash, nil)
	return code, err
}

// status returns the relay's /system/status: answered 200, or 503 while the relay says it is
// not healthy (draining, disk full).
func status(t testing.TB, base string) httpapi.Status {
	t.Helper()
	code, body, err := do(newClient(10*time.Second), http.MethodGet, base+"/rudder/relay-api/1/system/status", nil)
	if err != nil || (code != http.StatusOK && code != http.StatusServiceUnavailable) {
		t.Fatalf("status: %d %s %v", code, body, err)
	}
	st, err := httpapi.DecodeStatus(body)
	if err != nil {
		t.Fatalf("status: %v in %s", err, body)
	}
	return st
}

// percentile returns the p-th percentile (0-100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
