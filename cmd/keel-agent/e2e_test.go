package main

// Process-level tests: the real keel-agent and keel-relay binaries, built once in TestMain,
// run as subprocesses on loopback with configs, node maps and RSA keys (made by openssl) in
// temporary directories.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/nodekey"
	"github.com/keel-relay/keel/internal/wire/keyhash"
	"github.com/keel-relay/keel/relay/relaytest"
)

const testVersion = "v0.0.0-agent-e2e"

// agentBin and relayBin are the binaries TestMain builds; set once before any test runs.
var agentBin, relayBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "keel-agent-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	agentBin, relayBin = filepath.Join(dir, "keel-agent"), filepath.Join(dir, "keel-relay")
	for _, b := range []struct{ out, pkg string }{{agentBin, "."}, {relayBin, "../keel-relay"}} {
		build := exec.Command("go", "build", "-o", b.out, "-ldflags", "-X main.version="+testVersion, b.pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build %s: %v\n", b.pkg, err)
			return 1
		}
	}
	return m.Run()
}

// node is a test node: an id and an RSA key file made by openssl.
type node struct {
	id, keyFile, pin string
}

// newNode makes a key for id with openssl; encrypted gives it CFEngine's legacy encrypted
// PEM, else it is PKCS#8.
func newNode(t *testing.T, dir, id string, encrypted bool) node {
	t.Helper()
	keyFile := filepath.Join(dir, id+".priv")
	args := []string{"genrsa", "-out", keyFile}
	if encrypted {
		args = append(args, "-traditional", "-des3", "-passout", "pass:"+nodekey.DefaultPassphrase)
	}
	if out, err := exec.Command("openssl", append(args, "2048")...).CombinedOutput(); err != nil {
		t.Fatalf("openssl genrsa: %v\n%s", err, out)
	}
	k, err := nodekey.Load(keyFile, nodekey.DefaultPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	pin, err := keyhash.Of(&k.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return node{id: id, keyFile: keyFile, pin: pin.String()}
}

// cleanEnv is the test's environment without KEEL_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string { return relaytest.FreeAddr(t) }

// relayProc is a keel-relay subprocess.
type relayProc struct {
	api, admin string
	conf       string // its config file
}

// startRelay runs keel-relay (root) with a node map of nodes, all directly attached, and no
// edge API.
func startRelay(t *testing.T, dir string, nodes ...node) *relayProc {
	t.Helper()
	m := map[string]map[string]string{"root": {"hostname": "root.example", "policy-server": "root"}}
	for _, n := range nodes {
		m[n.id] = map[string]string{"hostname": n.id + ".example", "policy-server": "root", "key-hash": n.pin}
	}
	return runRelay(t, dir, m, "edge:\n  enabled: false\n")
}

// runRelay runs keel-relay (root, on free loopback ports) with the node map m and the
// config's edge section edgeYAML, stops it with SIGTERM when the test ends, and returns once
// its status endpoint answers 200.
func runRelay(t *testing.T, dir string, m map[string]map[string]string, edgeYAML string) *relayProc {
	t.Helper()
	b, _ := json.Marshal(m)
	nodesFile := filepath.Join(dir, "nodes.json")
	if err := os.WriteFile(nodesFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	api, admin := freeAddr(t), freeAddr(t)
	conf := filepath.Join(dir, "relay.yaml")
	y := fmt.Sprintf("node_id: root\nrole: root\ndata_dir: %q\nnodes_file: %q\nnodes_poll_interval: 0s\nshutdown_grace: 5s\nhttp:\n  listen: %s\nadmin:\n  listen: %s\n%s",
		filepath.Join(dir, "data"), nodesFile, api, admin, edgeYAML)
	if err := os.WriteFile(conf, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(relayBin, "run", "--config", conf)
	cmd.Env = cleanEnv()
	out := &relaytest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("--- keel-relay output ---\n%s", out.String())
		}
	})
	r := &relayProc{api: "http://" + api, admin: "http://" + admin, conf: conf}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(r.api + "/rudder/relay-api/1/system/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("relay not ready:\n%s", out.String())
	return nil
}

// metric returns the value of the sample name{labels} (labels in the exposition's order)
// on the relay's admin /metrics, 0 when absent.
func (r *relayProc) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(r.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if s, v, ok := strings.Cut(sc.Text(), " "); ok && s == series {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// agentConfig writes an agent.yaml for n talking to relayURL and returns its path.
func agentConfig(t *testing.T, dir string, n node, relayURL string) string {
	t.Helper()
	p := filepath.Join(dir, n.id+"-agent.yaml")
	y := fmt.Sprintf("node_id: %s\nrelay_url: %s\nkey_file: %q\nhostname: %s.example\nhttp:\n  timeout: 5s\n", n.id, relayURL, n.keyFile, n.id)
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// result is how a keel-agent run ended.
type result struct {
	code           int
	stdout, stderr string
	maxRSSKiB      int64
}

// runAgent runs keel-agent with args to completion.
func runAgent(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, args...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("keel-agent %s: %v", strings.Join(args, " "), err)
	}
	peakRSS := watchPeakRSS(cmd.Process.Pid)
	err := cmd.Wait()
	maxRSS := peakRSS()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("keel-agent %s: %v", strings.Join(args, " "), err)
	}
	r := result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	r.maxRSSKiB = maxRSS
	return r
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// TestShareHasFetch: share through the real relay, HEAD says present, the target fetches
// identical bytes; a second share of the same content sends no body (the relay's PUT count
// and received bytes do not move); other content is absent; a non-target cannot fetch.
func TestShareHasFetch(t *testing.T) {
	dir := t.TempDir()
	src := newNode(t, dir, "src", true) // CFEngine's legacy encrypted key
	dst := newNode(t, dir, "dst", false)
	relay := startRelay(t, dir, src, dst)
	srcConf, dstConf := agentConfig(t, dir, src, relay.api), agentConfig(t, dir, dst, relay.api)

	content := append(bytes.Repeat([]byte("shared file \x00\xff\r\n\n"), 5000), "end"...)
	file := filepath.Join(dir, "payload.bin")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	hash := hex.EncodeToString(sum[:])

	if r := runAgent(t, "has", "--config", srcConf, "--to", "dst", "--id", "payload", file); r.code != 1 || !strings.Contains(r.stdout, "absent") {
		t.Fatalf("has before share: %s", r)
	}
	r := runAgent(t, "share", "--config", srcConf, "--to", "dst", "--id", "payload", "--ttl", "1d 2h", file)
	if r.code != 0 || !strings.Contains(r.stdout, "sent to dst as payload") || !strings.Contains(r.stdout, hash) {
		t.Fatalf("share: %s", r)
	}
	puts := `keel_http_requests_total{code="200",method="PUT",route="shared-files"}`
	bytesIn := `keel_http_request_bytes_total{route="shared-files"}`
	if n := relay.metric(t, puts); n != 1 {
		t.Fatalf("relay counted %v PUTs, want 1", n)
	}
	received := relay.metric(t, bytesIn)
	if received < float64(len(content)) {
		t.Fatalf("relay received %v bytes, less than the file", received)
	}
	if r := runAgent(t, "has", "--config", srcConf, "--to", "dst", "--id", "payload", file); r.code != 0 || !strings.Contains(r.stdout, "present") {
		t.Fatalf("has after share: %s", r)
	}

	// The second share: HEAD says present, nothing is sent.
	r = runAgent(t, "share", "--config", srcConf, "--to", "dst", "--id", "payload", file)
	if r.code != 0 || !strings.Contains(r.stdout, "nothing sent") {
		t.Fatalf("second share: %s", r)
	}
	if n := relay.metric(t, puts); n != 1 {
		t.Errorf("after the second share the relay counted %v PUTs, want still 1", n)
	}
	if n := relay.metric(t, bytesIn); n != received {
		t.Errorf("after the second share the relay received %v bytes, want still %v", n, received)
	}

	dest := filepath.Join(dir, "fetched", "payload.out")
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		t.Fatal(err)
	}
	r = runAgent(t, "fetch", "--config", dstConf, "--from", "src", "--id", "payload", "--hash", hash, dest)
	if r.code != 0 || !strings.Contains(r.stdout, "fetched payload from src") {
		t.Fatalf("fetch: %s", r)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, content) {
		t.Fatalf("fetched %d bytes, not the shared content", len(got))
	}

	// Other content under the same id is absent; the source cannot fetch what is for dst.
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runAgent(t, "has", "--config", srcConf, "--to", "dst", "--id", "payload", other); r.code != 1 {
		t.Errorf("has with other content: %s", r)
	}
	r = runAgent(t, "fetch", "--config", srcConf, "--from", "src", "--id", "payload", filepath.Join(dir, "stolen"))
	if r.code != 1 || !strings.Contains(r.stderr, "/shared-files/src/src/payload: not found") {
		t.Errorf("fetch by src (it can only ask for files whose target is src): %s", r)
	}
	if r := runAgent(t, "fetch", "--config", dstConf, "--from", "src", "--id", "nothing", filepath.Join(dir, "none")); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("fetch of a missing file: %s", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "none")); err == nil {
		t.Error("a failed fetch created its destination")
	}
}

// TestShareRefused: a node whose key is not the one in the node map is refused (exit 1,
// the relay's reason shown); a relay that is down is an error (has exits 2).
func TestShareRefused(t *testing.T) {
	dir := t.TempDir()
	src := newNode(t, dir, "src", false)
	impostor := newNode(t, t.TempDir(), "src", false)
	dst := newNode(t, dir, "dst", false)
	relay := startRelay(t, dir, src, dst)
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := agentConfig(t, t.TempDir(), impostor, relay.api)
	r := runAgent(t, "share", "--config", conf, "--to", "dst", "--id", "f", file)
	if r.code != 1 || !strings.Contains(r.stderr, "403") {
		t.Errorf("share with the wrong key: %s", r)
	}
	down := agentConfig(t, t.TempDir(), src, "http://"+freeAddr(t))
	if r := runAgent(t, "has", "--config", down, "--to", "dst", "--id", "f", file); r.code != 2 {
		t.Errorf("has against a relay that is down: %s", r)
	}
	if r := runAgent(t, "share", "--config", down, "--to", "dst", "--id", "f", file); r.code != 1 || !strings.Contains(r.stderr, "connection refused") {
		t.Errorf("share to a relay that is down: %s", r)
	}
}

// TestFetchCorrupted: a relay (here a small HTTP listener standing in for it) that serves a
// body whose hash is not the one it announces: fetch fails, DEST keeps its old content and
// no temporary file is left.
func TestFetchCorrupted(t *testing.T) {
	dir := t.TempDir()
	dst := newNode(t, dir, "dst", false)
	good := []byte("the real content")
	sum := sha256.Sum256(good)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		w.Header().Set("Keel-Hash-Algorithm", "sha256")
		w.Write([]byte("the real c0ntent")) // same size, one byte flipped
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(out, "file")
	if err := os.WriteFile(dest, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := agentConfig(t, dir, dst, "http://"+ln.Addr().String())
	r := runAgent(t, "fetch", "--config", conf, "--from", "src", "--id", "file", dest)
	if r.code != 1 || !strings.Contains(r.stderr, "the relay announced") || !strings.Contains(r.stderr, "left unchanged") {
		t.Fatalf("corrupted fetch: %s", r)
	}
	if got, _ := os.ReadFile(dest); string(got) != "old" {
		t.Errorf("DEST now holds %q", got)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 {
		t.Errorf("files left in DEST's directory: %v", entries)
	}
	// Without a previous file, nothing is created.
	if r := runAgent(t, "fetch", "--config", conf, "--from", "src", "--id", "file", filepath.Join(out, "new")); r.code != 1 {
		t.Errorf("corrupted fetch: %s", r)
	}
	if _, err := os.Stat(filepath.Join(out, "new")); err == nil {
		t.Error("a corrupted fetch created its destination")
	}
}

// TestShareLargeFileRSS: sharing a 64 MiB file streams it: the agent's peak RSS stays far
// below the file's size.
func TestShareLargeFileRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB transfer")
	}
	dir := t.TempDir()
	src, dst := newNode(t, dir, "src", false), newNode(t, dir, "dst", false)
	relay := startRelay(t, dir, src, dst)
	file := filepath.Join(dir, "big")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 1<<20)
	for i := range 64 {
		for j := range block {
			block[j] = byte(i*31 + j*7)
		}
		if _, err := f.Write(block); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	conf := agentConfig(t, dir, src, relay.api)
	began := time.Now()
	r := runAgent(t, "share", "--config", conf, "--to", "dst", "--id", "big", file)
	if r.code != 0 || !strings.Contains(r.stdout, "67108864 bytes") {
		t.Fatalf("share of 64 MiB: %s", r)
	}
	t.Logf("share of a 64 MiB file: %s, keel-agent peak RSS %d KiB (%.1f MiB)", time.Since(began).Round(time.Millisecond), r.maxRSSKiB, float64(r.maxRSSKiB)/1024)
	if r.maxRSSKiB == 0 || r.maxRSSKiB > 48*1024 {
		t.Errorf("keel-agent peak RSS %d KiB: the file is not streamed (bound 48 MiB)", r.maxRSSKiB)
	}
	dest := filepath.Join(dir, "big.out")
	r = runAgent(t, "fetch", "--config", agentConfig(t, dir, dst, relay.api), "--from", "src", "--id", "big", dest)
	if r.code != 0 {
		t.Fatalf("fetch of 64 MiB: %s", r)
	}
	t.Logf("fetch of a 64 MiB file: keel-agent peak RSS %d KiB", r.maxRSSKiB)
	want, _, _ := hashOf(t, file)
	if got, n, _ := hashOf(t, dest); got != want || n != 64<<20 {
		t.Errorf("fetched %d bytes, sha256 %s, want %s", n, got, want)
	}
}

func hashOf(t *testing.T, path string) (string, int64, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// TestCLI: usage errors exit 2 with a message naming what is wrong; version and
// check-config behave.
func TestCLI(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(good, []byte("node_id: n1\nkey_file: "+filepath.Join(dir, "nokey")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("node_id: n1\nhttp: {timeout: forever}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unknown := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknown, []byte("node_id: n1\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"share", "--id", "f", file}, 2, "--to is required"},
		{[]string{"share", "--to", "t", file}, 2, "--id is required"},
		{[]string{"share", "--to", "t", "--id", "f"}, 2, "PATH is required"},
		{[]string{"share", "--to", "t", file, "--id", "f", file, "x"}, 2, "one PATH expected, got 3 arguments"},
		{[]string{"share", file, "--to", "t", "--id", "..", "--ttl", "1d"}, 2, `--id: invalid file id ".."`}, // flags after the path
		{[]string{"share", "--to", "a/b", "--id", "f", file}, 2, `--to: invalid node id "a/b"`},
		{[]string{"share", "--to", "t", "--id", "..", file}, 2, `--id: invalid file id ".."`},
		{[]string{"share", "--to", "t", "--id", "f", "--ttl", "forever", file}, 2, `--ttl: invalid TTL "forever"`},
		{[]string{"share", "--to", "t", "--id", "f", "--ttl", "20000d", file}, 2, "longer than the maximum"},
		{[]string{"share", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"has", "--to", "t", "--id", "f"}, 2, "PATH is required"},
		{[]string{"has", "--to", "a/b", "--id", "f", file}, 2, `--to: invalid node id "a/b"`},
		{[]string{"has", "--to", "t", "--id", "f", file, "x"}, 2, "one PATH expected, got 2 arguments"},
		{[]string{"fetch", "--id", "f", file}, 2, "--from is required"},
		{[]string{"fetch", "--from", "s", file}, 2, "--id is required"},
		{[]string{"fetch", "--from", "s", "--id", "f"}, 2, "DEST is required"},
		{[]string{"fetch", "--from", "a/b", "--id", "f", file}, 2, `--from: invalid node id "a/b"`},
		{[]string{"fetch", "--from", "s", "--id", "..", file}, 2, `--id: invalid file id ".."`},
		{[]string{"fetch", "--from", "s", "--id", "f", "--mode", "rw", file}, 2, `--mode: mode "rw" is not octal`},
		{[]string{"fetch", "--from", "s", "--id", "f", dir}, 2, "is a directory"},
		{[]string{"share", "--config", bad, "--to", "t", "--id", "f", file}, 1, "http.timeout: invalid duration"},
		{[]string{"share", "--config", good, "--to", "t", "--id", "f", file}, 1, "nokey"},
		{[]string{"share", "--config", filepath.Join(dir, "missing.yaml"), "--to", "t", "--id", "f", file}, 1, "missing.yaml"},
		{[]string{"check-config", "--config", unknown}, 1, `unknown key "bogus"`},
		{[]string{"check-config", "--config", bad}, 1, "http.timeout: invalid duration"},
		{[]string{"check-config", "--config", good, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"service"}, 2, "keel-agent service: missing command\nRun 'keel-agent service --help' for usage.\n"},
		{[]string{"service", "restart"}, 2, `unknown subcommand "restart"`},
		{[]string{"edge", "frob"}, 2, `unknown subcommand "frob"`},
		{[]string{"service", "status", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"version", "x"}, 2, `unexpected argument "x"`},
	} {
		r := runAgent(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("keel-agent %q: %s\nwant exit %d and %q", tc.args, r, tc.code, tc.want)
		}
	}
	if r := runAgent(t, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "keel-agent "+testVersion+" (") {
		t.Errorf("version: %s", r)
	}
	r := runAgent(t, "check-config", "--config", good)
	if r.code != 0 || !strings.Contains(r.stdout, "# config OK ("+good) || !strings.Contains(r.stdout, "node_id: n1") || !strings.Contains(r.stderr, "note: share, has and fetch will fail") {
		t.Errorf("check-config: %s", r)
	}
	if r := runAgent(t, "help"); r.code != 0 || !strings.Contains(r.stdout, "keel-agent fetch --from SOURCE") {
		t.Errorf("help: %s", r)
	}
}
