package main

// Process-level tests: the real keel-relay binary, built once in TestMain, runs as a
// subprocess on loopback ports with a YAML config in a temporary directory. This file holds
// the harness; the tests are in e2e_test.go, forward_test.go, crash_test.go and
// backup_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/reqauth"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/relaytest"
)

// testVersion is linked into the test binary, so `keel-relay version` can be checked.
const testVersion = "v0.0.0-e2e"

// relayBin is the path of the keel-relay binary TestMain builds; it is set once, before
// any test runs, and only read afterwards.
var relayBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

// buildAndRun builds the binary (without -race, whatever the test process uses) into a
// temporary directory, runs the tests and removes the directory.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "keel-relay-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	relayBin = filepath.Join(dir, "keel-relay")
	build := exec.Command("go", "build", "-o", relayBin, "-ldflags", "-X main.version="+testVersion, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go build ./cmd/keel-relay:", err)
		return 1
	}
	return m.Run()
}

// relayConf is what a test relay's config file says.
type relayConf struct {
	NodeID   string
	Role     string // root when empty
	Upstream string
	DataDir  string
	Nodes    string // nodes_file
	Listen   string // http.listen
	Admin    string // admin.listen
	LogLevel string // info when empty
	// Extra is appended to the YAML as is (top-level keys and sections not written above).
	Extra string
}

// writeConfig writes c as a config file in dir and returns its path. Sections the tests
// tune are written whole here, so Extra must not repeat forward, log, edge or shared_files.
func writeConfig(t testing.TB, dir, name string, c relayConf) string {
	t.Helper()
	role, level := c.Role, c.LogLevel
	if role == "" {
		role = "root"
	}
	if level == "" {
		level = "info"
	}
	y := fmt.Sprintf(`node_id: %s
role: %s
upstream: %q
data_dir: %q
nodes_file: %q
nodes_poll_interval: 0s
shutdown_grace: 5s
log:
  level: %s
http:
  listen: %s
admin:
  listen: %s
edge:
  listen: 127.0.0.1:0
shared_files:
  cleanup_interval: 1h
forward:
  min_backoff: 100ms
  max_backoff: 1s
  allow_http: true
  sub_relay_url: "http://{hostname}"
%s`, c.NodeID, role, c.Upstream, c.DataDir, c.Nodes, level, c.Listen, c.Admin, c.Extra)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// cleanEnv returns the test process's environment without KEEL_* variables, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEEL_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// proc is a running keel-relay process.
type proc struct {
	name  string
	cmd   *exec.Cmd
	out   *relaytest.SyncBuffer
	done  chan struct{}
	api   string // API base URL
	admin string // admin base URL ("" when disabled)
}

// procOptions are the less common ways to start a process.
type procOptions struct {
	dir string   // working directory
	env []string // added to the clean environment
}

// startRelay starts `keel-relay run --config cfg` (cfg "" = no --config) and waits until its
// API answers the status endpoint. The process is killed when the test ends, and its output
// is logged if the test failed.
func startRelay(t testing.TB, name, cfg, api, admin string) *proc {
	t.Helper()
	args := []string{"run"}
	if cfg != "" {
		args = append(args, "--config", cfg)
	}
	p := startProc(t, name, procOptions{}, args...)
	p.api, p.admin = "http://"+api, "http://"+admin
	p.waitReady(t)
	return p
}

// startProc starts the binary with args, without waiting for anything.
func startProc(t testing.TB, name string, o procOptions, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(relayBin, args...)
	cmd.Dir = o.dir
	cmd.Env = cleanEnv(o.env...)
	out := &relaytest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- output of %s (pid %d) ---\n%s", name, cmd.Process.Pid, out.String())
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady polls the status endpoint until it answers 200.
func (p *proc) waitReady(t testing.TB) {
	t.Helper()
	client := newClient(time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("%s exited before it was ready (code %d):\n%s", p.name, p.cmd.ProcessState.ExitCode(), p.out.String())
		}
		resp, err := client.Get(p.api + "/rudder/relay-api/1/system/status")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 15s:\n%s", p.name, p.out.String())
}

// signal sends sig to the process.
func (p *proc) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// wait waits for the process to exit and returns its exit code (-1 when killed by a signal).
func (p *proc) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s:\n%s", p.name, timeout, p.out.String())
		return 0
	}
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("%s exited with code %d after SIGTERM:\n%s", p.name, code, p.out.String())
	}
}

// kill9 kills the process with SIGKILL and waits for it to be gone.
func (p *proc) kill9(t testing.TB) {
	t.Helper()
	p.signal(t, syscall.SIGKILL)
	p.wait(t, 10*time.Second)
}

// kill ends the process if it still runs (test cleanup).
func (p *proc) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// runCLI runs the binary to completion and returns its exit code, stdout and stderr.
func runCLI(t testing.TB, o procOptions, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, relayBin, args...)
	cmd.Dir = o.dir
	cmd.Env = cleanEnv(o.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("keel-relay %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// newClient returns an HTTP client that opens a connection per request. Pooled connections
// are avoided on purpose: a transport may dial a spare one that never carries a request, and
// net/http's Shutdown waits up to 5s for such a connection, which would slow every stop.
func newClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
}

// filesURL is the URL of a shared file on the relay at base.
func filesURL(base, target, source, id string) string {
	return base + "/rudder/relay-api/1/shared-files/" + target + "/" + source + "/" + id
}

// sha256Hex returns the hex SHA-256 of b.
func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// putFile uploads content signed by source for target, with a TTL of one day.
func putFile(t testing.TB, base string, source *relaytest.Node, target, id string, content []byte) (int, string) {
	t.Helper()
	return relaytest.Do(t, http.MethodPut, filesURL(base, target, source.ID, id), relaytest.SignedBody(t, source, content, "1d"))
}

// headFile asks whether the relay holds the file with content's hash.
func headFile(t testing.TB, base, target, source, id string, content []byte) int {
	t.Helper()
	code, _ := relaytest.Do(t, http.MethodHead, filesURL(base, target, source, id)+"?hash="+sha256Hex(content), nil)
	return code
}

// headHeaders asks whether the relay holds the file with content's hash and returns the
// status and the answer's headers.
func headHeaders(t testing.TB, base, target, source, id string, content []byte) (int, http.Header) {
	t.Helper()
	url := filesURL(base, target, source, id) + "?hash=" + sha256Hex(content)
	resp, err := newClient(30 * time.Second).Head(url)
	if err != nil {
		t.Fatalf("HEAD %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// getFile downloads a file as its target node, with a signed request.
func getFile(t testing.TB, base string, target *relaytest.Node, source, id string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, filesURL(base, target.ID, source, id), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := reqauth.Sign(req, target.ID, target.Key, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := newClient(30 * time.Second).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", req.URL, err)
	}
	return resp.StatusCode, b
}

// requireFile checks that the relay serves exactly content for the file.
func requireFile(t testing.TB, base string, target *relaytest.Node, source, id string, content []byte) {
	t.Helper()
	if code := headFile(t, base, target.ID, source, id, content); code != http.StatusOK {
		t.Fatalf("HEAD %s/%s/%s with its hash: %d, want 200", target.ID, source, id, code)
	}
	code, got := getFile(t, base, target, source, id)
	if code != http.StatusOK || !bytes.Equal(got, content) {
		t.Fatalf("GET %s/%s/%s: %d, %d bytes (sha256 %s), want 200 and %d bytes (sha256 %s)",
			target.ID, source, id, code, len(got), sha256Hex(got), len(content), sha256Hex(content))
	}
}

// status returns the relay's /system/status.
func status(t testing.TB, base string) httpapi.Status {
	t.Helper()
	code, body := relaytest.Do(t, http.MethodGet, base+"/rudder/relay-api/1/system/status", nil)
	if code != http.StatusOK {
		t.Fatalf("status: %d %s", code, body)
	}
	st, err := httpapi.DecodeStatus([]byte(body))
	if err != nil {
		t.Fatalf("status: %v in %s", err, body)
	}
	return st
}

// metricValue returns the value of the sample name{labels} in the relay's /metrics (0 when
// the sample is absent). labels must list every label of the sample.
func metricValue(t testing.TB, admin, name string, labels map[string]string) float64 {
	t.Helper()
	code, body := relaytest.Do(t, http.MethodGet, admin+"/metrics", nil)
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		got := map[string]string{}
		if _, set, ok := strings.Cut(series, "{"); ok {
			for _, kv := range strings.Split(strings.TrimSuffix(set, "}"), ",") {
				k, v, _ := strings.Cut(kv, "=")
				got[k] = strings.Trim(v, `"`)
			}
		}
		if len(got) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			if got[k] != v {
				match = false
			}
		}
		if match {
			f, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}
