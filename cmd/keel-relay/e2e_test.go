package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/relaytest"
)

// TestCLI runs the commands that do not serve: exit codes, and what they print.
func TestCLI(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        []string
		code       int
		stdout     string // must contain
		stderr     string // must contain
		noStdout   bool
		wantConfig bool // stdout must be a config that loads back to the same YAML
	}{
		{name: "version", args: []string{"version"}, stdout: "keel-relay " + testVersion + " (commit"},
		{name: "--version", args: []string{"--version"}, stdout: "keel-relay " + testVersion},
		{name: "help", args: []string{"help"}, stdout: "keel-relay check-config"},
		{name: "no command", args: nil, code: 2, stderr: "Usage:", noStdout: true},
		{name: "unknown command", args: []string{"serve"}, code: 2, stderr: `unknown command "serve"`, noStdout: true},
		{name: "run with an argument", args: []string{"run", "now"}, code: 2, stderr: `unexpected argument "now"`},
		{name: "run with an unknown flag", args: []string{"run", "--port", "1"}, code: 2, stderr: "flag provided but not defined: -port"},
		{name: "backup without a file", args: []string{"backup", "--config", "testdata/good.yaml"}, code: 2, stderr: "usage: keel-relay backup"},
		{name: "restore without a file", args: []string{"restore", "--config", "testdata/good.yaml"}, code: 2, stderr: "usage: keel-relay restore"},
		{name: "run --help", args: []string{"run", "--help"}, stdout: "Usage: keel-relay run [--config FILE]"},
		{name: "check-config --help", args: []string{"check-config", "--help"}, stdout: "--config FILE"},
		{name: "backup --help", args: []string{"backup", "--help"}, stdout: "Usage: keel-relay backup"},
		{name: "backup -h after its file", args: []string{"backup", "x.bak", "-h"}, stdout: "Usage: keel-relay backup"},
		{name: "edge --help", args: []string{"edge", "--help"}, stdout: "enroll-token"},
		{name: "edge ls -h", args: []string{"edge", "ls", "-h"}, stdout: "--admin HOST:PORT"},
		{name: "help edge invoke", args: []string{"help", "edge", "invoke"}, stdout: "Usage: keel-relay edge invoke"},
		{name: "unknown edge subcommand", args: []string{"edge", "frob"}, code: 2, noStdout: true,
			stderr: "keel-relay edge: unknown subcommand \"frob\"\nRun 'keel-relay edge --help' for usage.\n"},
		{name: "unknown flag: one-line hint", args: []string{"backup", "--bogus"}, code: 2, noStdout: true,
			stderr: "flag provided but not defined: -bogus\nRun 'keel-relay backup --help' for usage.\n"},
		{name: "flags after the file", args: []string{"restore", "testdata/no-such.bak", "--config", "testdata/good.yaml", "--force"},
			code: 1, stderr: "keel-relay: restore: open testdata/no-such.bak", noStdout: true},
		{name: "completion bash", args: []string{"completion", "bash"}, stdout: "complete -o filenames -F _keel_relay keel-relay"},
		{name: "completion fish", args: []string{"completion", "fish"}, code: 2, stderr: `unknown subcommand "fish"`, noStdout: true},

		{name: "check-config good", args: []string{"check-config", "--config", "testdata/good.yaml"},
			stdout: "node_id: cli-test\n", wantConfig: true},
		{name: "check-config good, keeps the file's values", args: []string{"check-config", "--config", "testdata/good.yaml"},
			stdout: "  min_backoff: 2s\n"},
		{name: "check-config environment override", args: []string{"check-config", "--config", "testdata/good.yaml"},
			env: []string{"KEEL_HTTP_LISTEN=127.0.0.1:4040"}, stdout: "  listen: 127.0.0.1:4040\n", wantConfig: true},
		{name: "check-config unknown key", args: []string{"check-config", "--config", "testdata/unknown-key.yaml"},
			code: 1, stderr: `unknown key "forward.min_backof"`, noStdout: true},
		{name: "check-config bad duration", args: []string{"check-config", "--config", "testdata/bad-duration.yaml"},
			code: 1, stderr: `forward.max_backoff: invalid duration "soon"`, noStdout: true},
		{name: "check-config bad role", args: []string{"check-config", "--config", "testdata/bad-role.yaml"},
			code: 1, stderr: `role: "king" is not root or relay`, noStdout: true},
		{name: "check-config relay without upstream", args: []string{"check-config", "--config", "testdata/relay-without-upstream.yaml"},
			code: 1, stderr: "upstream: required when role is relay", noStdout: true},
		{name: "check-config not YAML", args: []string{"check-config", "--config", "testdata/not-yaml.yaml"},
			code: 1, stderr: "parsing YAML", noStdout: true},
		{name: "check-config with an argument", args: []string{"check-config", "--config", "testdata/good.yaml", "extra"},
			code: 2, stderr: `keel-relay check-config: unexpected argument "extra"`, noStdout: true},
		{name: "check-config missing file", args: []string{"check-config", "--config", "testdata/missing.yaml"},
			code: 1, stderr: "missing.yaml: no such file or directory", noStdout: true},
		{name: "check-config bad environment value", args: []string{"check-config", "--config", "testdata/good.yaml"},
			env: []string{"KEEL_LOG_LEVEL=loud"}, code: 1, stderr: `log.level: "loud" is not debug, info, warn or error (from KEEL_LOG_LEVEL)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, procOptions{env: tt.env}, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout does not contain %q:\n%s", tt.stdout, stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.stderr, stderr)
			}
			if tt.noStdout && stdout != "" {
				t.Errorf("stdout not empty:\n%s", stdout)
			}
			if tt.wantConfig {
				cfg, err := config.LoadBytes([]byte(stdout), nil)
				if err != nil {
					t.Fatalf("the printed config does not load: %v\n%s", err, stdout)
				}
				again, err := cfg.YAML()
				if err != nil {
					t.Fatal(err)
				}
				// The memory budget follows the config, as comments.
				printed, memory, _ := strings.Cut(stdout, "# memory budget: ")
				if memory == "" {
					t.Errorf("no memory budget printed:\n%s", stdout)
				}
				if _, printed, _ = strings.Cut(printed, "\n"); printed != string(again) {
					t.Errorf("the printed config does not round-trip:\n%s\nloads back as\n%s", printed, again)
				}
			}
		})
	}
}

// oneRelay starts a root relay whose node map lists root, src and tgt, and returns it with
// its config path and the nodes.
func oneRelay(t *testing.T, dir string) (p *proc, cfg string, src, tgt *relaytest.Node) {
	t.Helper()
	rootN := relaytest.NewNode("root", "root", 0)
	src = relaytest.NewNode("src", "root", 1)
	tgt = relaytest.NewNode("tgt", "root", 2)
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(rootN, src, tgt))
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	cfg = writeConfig(t, dir, "relay.yaml", relayConf{
		NodeID: "root", DataDir: filepath.Join(dir, "data"), Nodes: nodes, Listen: api, Admin: admin,
	})
	return startRelay(t, "relay", cfg, api, admin), cfg, src, tgt
}

// startSlowPut starts an upload that takes about d to send and returns a channel that
// yields its status code (0 when the request failed).
func startSlowPut(url string, body []byte, d time.Duration) <-chan int {
	res := make(chan int, 1)
	pieces := (len(body) + 32<<10 - 1) / (32 << 10)
	go func() {
		res <- relaytest.PacedPut(newClient(time.Minute), url, body, 32<<10, d/time.Duration(pieces))
	}()
	return res
}

// TestStopSignals checks that SIGTERM and SIGINT drain: an upload in flight when the
// signal arrives completes, the process exits 0, and the file is there after a restart.
// A second signal during the drain exits at once with code 1.
func TestStopSignals(t *testing.T) {
	for _, tt := range []struct {
		sig  syscall.Signal
		name string
	}{{syscall.SIGTERM, "terminated"}, {syscall.SIGINT, "interrupt"}} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			p, cfg, src, tgt := oneRelay(t, dir)
			content := randomBytes(t, 1<<20)
			res := startSlowPut(filesURL(p.api, tgt.ID, src.ID, "draining"), relaytest.SignedBody(t, src, content, "1d"), time.Second)
			time.Sleep(300 * time.Millisecond)
			p.signal(t, tt.sig)
			if code := <-res; code != http.StatusOK {
				t.Errorf("upload in flight during the drain: %d, want 200", code)
			}
			if code := p.wait(t, 20*time.Second); code != 0 {
				t.Fatalf("exit code %d, want 0", code)
			}
			logs := p.out.String()
			for _, want := range []string{"stop signal: draining", "signal=" + tt.name, "msg=draining", "keel-relay stopped"} {
				if !strings.Contains(logs, want) {
					t.Errorf("log does not contain %q:\n%s", want, logs)
				}
			}
			if strings.Contains(logs, "level=ERROR") {
				t.Errorf("errors logged during a clean stop:\n%s", logs)
			}
			api, admin := strings.TrimPrefix(p.api, "http://"), strings.TrimPrefix(p.admin, "http://")
			p = startRelay(t, "relay (restarted)", cfg, api, admin)
			requireFile(t, p.api, tgt, src.ID, "draining", content)
		})
	}

	t.Run("second signal", func(t *testing.T) {
		dir := t.TempDir()
		p, cfg, src, tgt := oneRelay(t, dir)
		res := startSlowPut(filesURL(p.api, tgt.ID, src.ID, "cut"), relaytest.SignedBody(t, src, randomBytes(t, 1<<20), "1d"), 10*time.Second)
		time.Sleep(300 * time.Millisecond)
		p.signal(t, syscall.SIGTERM)
		time.Sleep(200 * time.Millisecond)
		p.signal(t, syscall.SIGTERM)
		if code := p.wait(t, 3*time.Second); code != 1 {
			t.Errorf("exit code %d after a second SIGTERM, want 1", code)
		}
		if code := <-res; code == http.StatusOK {
			t.Errorf("the upload cut by the exit got 200")
		}
		if logs := p.out.String(); !strings.Contains(logs, "second stop signal") {
			t.Errorf("log does not mention the second signal:\n%s", logs)
		}
		// The store opens again after the abrupt exit.
		api, admin := strings.TrimPrefix(p.api, "http://"), strings.TrimPrefix(p.admin, "http://")
		p = startRelay(t, "relay (restarted)", cfg, api, admin)
		if st := status(t, p.api); st.Files != 0 {
			t.Errorf("files_stored %d after the cut upload, want 0", st.Files)
		}
	})
}

// keepAlive is one HTTP/1.1 connection used for several requests.
type keepAlive struct {
	conn net.Conn
	br   *bufio.Reader
}

func dialKeepAlive(t *testing.T, base string) *keepAlive {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &keepAlive{conn: conn, br: bufio.NewReader(conn)}
}

// do sends a request on the connection and reads the answer; it fails the test if the
// connection was closed.
func (k *keepAlive) do(t *testing.T, method, path string, body []byte) (int, string) {
	t.Helper()
	if err := k.conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: relay\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", method, path, len(body))
	if _, err := k.conn.Write(append([]byte(req), body...)); err != nil {
		t.Fatalf("%s %s on the kept-alive connection: %v", method, path, err)
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		t.Fatalf("%s %s on the kept-alive connection: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Close {
		t.Fatalf("%s %s: the relay closes the kept-alive connection", method, path)
	}
	return resp.StatusCode, string(b)
}

// TestReload checks SIGHUP: a new node map is used at once without a restart and without
// dropping connections; a broken one is refused and the map in force stays.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	rootN := relaytest.NewNode("root", "root", 0)
	src := relaytest.NewNode("src", "root", 1)
	old := relaytest.NewNode("old", "root", 2)
	fresh := relaytest.NewNode("fresh", "root", 3)
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(rootN, src, old))
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	rc := relayConf{NodeID: "root", DataDir: filepath.Join(dir, "data"), Nodes: nodes, Listen: api, Admin: admin}
	cfg := writeConfig(t, dir, "relay.yaml", rc)
	// Every request logged (http.request_log: all), for the log level check at the end.
	p := startProc(t, "relay", procOptions{env: []string{"KEEL_HTTP_REQUEST_LOG=all"}}, "run", "--config", cfg)
	p.api, p.admin = "http://"+api, "http://"+admin
	p.waitReady(t)

	conn := dialKeepAlive(t, p.api)
	path := func(target, id string) string { return filesURL("", target, src.ID, id) }
	if code, body := conn.do(t, http.MethodGet, "/rudder/relay-api/1/system/status", nil); code != http.StatusOK {
		t.Fatalf("status: %d %s", code, body)
	}
	body := relaytest.SignedBody(t, src, []byte("for the fresh node\n"), "1d")
	if code, msg := conn.do(t, http.MethodPut, path(fresh.ID, "f1"), body); code != http.StatusNotFound {
		t.Fatalf("PUT for a node not in the map yet: %d %s, want 404", code, msg)
	}

	// A new map, then SIGHUP.
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(rootN, src, old, fresh))
	p.signal(t, syscall.SIGHUP)
	relaytest.Eventually(t, 5*time.Second, "the new node map is in force", func() bool { return status(t, p.api).NodeMap.Nodes == 4 })
	if code, msg := conn.do(t, http.MethodPut, path(fresh.ID, "f1"), body); code != http.StatusOK {
		t.Fatalf("PUT for the new node after SIGHUP, on the connection opened before: %d %s", code, msg)
	}
	code, got := getFile(t, p.api, fresh, src.ID, "f1")
	if code != http.StatusOK || !bytes.Equal(got, []byte("for the fresh node\n")) {
		t.Fatalf("GET by the new node: %d %q", code, got)
	}

	// A broken map, then SIGHUP: refused, the previous map stays.
	relaytest.WriteFileAtomic(t, nodes, []byte(`{"fresh": {"hostname": "x", `))
	p.signal(t, syscall.SIGHUP)
	relaytest.Eventually(t, 5*time.Second, "the broken node map is reported", func() bool { return status(t, p.api).NodeMap.LastError != "" })
	st := status(t, p.api)
	if st.NodeMap.Nodes != 4 {
		t.Errorf("nodes in force after a broken map: %d, want 4", st.NodeMap.Nodes)
	}
	if !strings.Contains(st.NodeMap.LastError, nodes) {
		t.Errorf("last_error %q does not name the file %s", st.NodeMap.LastError, nodes)
	}
	for _, target := range []string{old.ID, fresh.ID} {
		if code, msg := conn.do(t, http.MethodPut, path(target, "f2"), relaytest.SignedBody(t, src, []byte("after the broken map\n"), "1d")); code != http.StatusOK {
			t.Errorf("PUT for %s after a broken map: %d %s", target, code, msg)
		}
	}
	if p.exited() {
		t.Fatalf("the relay exited")
	}
	if logs := p.out.String(); !strings.Contains(logs, "SIGHUP: reloading") || !strings.Contains(logs, "node map refused") {
		t.Errorf("log does not show the reloads:\n%s", logs)
	}

	// A good map again clears the error.
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(rootN, src, old, fresh))
	p.signal(t, syscall.SIGHUP)
	relaytest.Eventually(t, 5*time.Second, "the error is cleared by a good map", func() bool { return status(t, p.api).NodeMap.LastError == "" })

	// A changed config: the log level applies at once, a storage setting needs a restart.
	const statusLine = "path=/rudder/relay-api/1/system/status"
	if !strings.Contains(p.out.String(), statusLine) {
		t.Fatalf("status requests not logged at level info")
	}
	rc.LogLevel, rc.Extra = "warn", "storage:\n  block_cache_size: 16MiB\n"
	writeConfig(t, dir, "relay.yaml", rc)
	p.signal(t, syscall.SIGHUP)
	relaytest.Eventually(t, 5*time.Second, "the changed config is reloaded", func() bool {
		return strings.Contains(p.out.String(), `msg="config change needs a restart to take effect" key=storage`)
	})
	before := strings.Count(p.out.String(), statusLine)
	if code, _ := conn.do(t, http.MethodGet, "/rudder/relay-api/1/system/status", nil); code != http.StatusOK {
		t.Fatalf("status after the config reload: %d", code)
	}
	time.Sleep(200 * time.Millisecond)
	if after := strings.Count(p.out.String(), statusLine); after != before {
		t.Errorf("a status request was logged at level info after log.level became warn")
	}
	p.stop(t)
}

// TestRunEmbeddedDefault runs without a config file: the embedded default applies (data in
// ./keel-data of the working directory), with the listeners (edge too: nothing in the tests
// may hold a fixed port) moved by KEEL_* variables.
func TestRunEmbeddedDefault(t *testing.T) {
	if _, err := os.Stat(config.DefaultPath()); err == nil {
		t.Skipf("%s exists on this machine; it would be used instead of the embedded default", config.DefaultPath())
	}
	dir := t.TempDir()
	api, admin, edge := relaytest.FreeAddr(t), relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	p := startProc(t, "relay", procOptions{dir: dir, env: []string{
		"HOME=" + dir, "KEEL_HTTP_LISTEN=" + api, "KEEL_ADMIN_LISTEN=" + admin, "KEEL_EDGE_LISTEN=" + edge, "KEEL_SHUTDOWN_GRACE=5s",
	}}, "run")
	p.api, p.admin = "http://"+api, "http://"+admin
	p.waitReady(t)

	st := status(t, p.api)
	if st.NodeID != "root" || st.Role != "root" || st.NodeMap.Nodes != 0 {
		t.Errorf("status %+v, want node_id root, role root, an empty node map", st)
	}
	if !strings.Contains(p.out.String(), "using the embedded default") {
		t.Errorf("log does not say the embedded default is used:\n%s", p.out.String())
	}
	if code, _ := relaytest.Do(t, http.MethodGet, p.admin+"/metrics", nil); code != http.StatusOK {
		t.Errorf("admin /metrics: %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "keel-data", "MANIFEST")); err != nil {
		t.Errorf("no store in ./keel-data of the working directory: %v", err)
	}
	p.stop(t)
}
