//go:build linux

package relay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/runoutput"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/relaytest"
	"github.com/keel-relay/keel/relay/remoterun"
)

// agentPath is the fake agent built once by TestMain (testdata/fakeagent).
var agentPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keel-fakeagent-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	agentPath = filepath.Join(dir, "fakeagent")
	out, err := exec.Command("go", "build", "-o", agentPath, "./testdata/fakeagent").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build ./testdata/fakeagent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

const (
	api   = "/rudder/relay-api"
	apiV1 = "/rudder/relay-api/1"
	// waitLong bounds every wait for something asynchronous (slow, busy machines, -race).
	waitLong = 15 * time.Second
)

// mapNode is one entry of a test node map; host defaults to 127.0.0.1.
type mapNode struct{ id, parent, host string }

func nodeMap(nodes ...mapNode) []byte {
	var ns []*relaytest.Node
	for _, n := range nodes {
		rn := relaytest.NewNode(n.id, n.parent, 0)
		rn.Hostname = cmpOr(n.host, "127.0.0.1")
		ns = append(ns, rn)
	}
	return relaytest.NodeMap(ns...)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// rootWith returns the map of a root relay with the given nodes directly under it.
func rootWith(ids ...string) []byte {
	nodes := []mapNode{{id: "root", parent: "root"}}
	for _, id := range ids {
		nodes = append(nodes, mapNode{id: id, parent: "root"})
	}
	return nodeMap(nodes...)
}

// agentCommand is a remote_run.command running the fake agent with the node's id, hostname and
// classes, its pid files in pidDir, and extra flags.
func agentCommand(pidDir string, extra ...string) []string {
	return append([]string{agentPath, "-node", "{node_id}", "-host", "{hostname}", "-classes", "{classes}", "-piddir", pidDir}, extra...)
}

// startRunRelay starts a relay (root unless tweak says otherwise) with the node map and command,
// after checking that config validation accepts its config.
func startRunRelay(t testing.TB, self string, nodes []byte, command []string, tweak func(*config.Config)) *relaytest.Relay {
	t.Helper()
	cfg := relaytest.Config(t, t.TempDir(), self, nodes)
	cfg.RemoteRun.Command = command
	cfg.RemoteRun.SubRelayURL = "http://{hostname}"
	cfg.Forward.AllowHTTP = true
	if tweak != nil {
		tweak(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config refused: %v", err)
	}
	return relaytest.Start(t, cfg)
}

// asRelay makes a config a non-root relay's (its upstream is never contacted in these tests).
func asRelay(t testing.TB) func(*config.Config) {
	upstream := "http://" + relaytest.DownAddr(t)
	return func(c *config.Config) {
		c.Role = config.RoleRelay
		c.Upstream = upstream
	}
}

func newClient() *http.Client {
	// No keep-alive: a spare idle connection would delay each relay's shutdown.
	return &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
}

// post sends a form as Rudder does and returns the status, headers and body. header is a list
// of name, value pairs.
func post(t testing.TB, url, form string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: reading the answer: %v", url, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// runAnswer is a streamed remote-run answer parsed back.
type runAnswer struct {
	output  map[string][]string         // node -> its output lines, prefix removed, in order
	results map[string]runoutput.Result // node -> its result line
	order   []string                    // the node of each line, in the order received
}

// parseAnswer parses a remote-run answer, failing on any line that is neither "<node>:..." nor
// a JSON result, on a node's output after its result, and on a second result for a node.
func parseAnswer(t testing.TB, body string) runAnswer {
	t.Helper()
	a := runAnswer{output: map[string][]string{}, results: map[string]runoutput.Result{}}
	if body == "" {
		return a
	}
	if !strings.HasSuffix(body, "\n") {
		t.Fatalf("answer does not end with a newline: ...%q", body[max(0, len(body)-200):])
	}
	for i, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if strings.HasPrefix(line, "{") {
			var res runoutput.Result
			dec := json.NewDecoder(strings.NewReader(line))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&res); err != nil || dec.More() {
				t.Fatalf("line %d: bad result line %q: %v", i+1, line, err)
			}
			if _, dup := a.results[res.Node]; dup {
				t.Fatalf("line %d: a second result line for node %s: %q", i+1, res.Node, line)
			}
			a.results[res.Node] = res
			a.order = append(a.order, res.Node)
			continue
		}
		node, text, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("line %d has no node prefix: %q", i+1, line)
		}
		if _, done := a.results[node]; done {
			t.Fatalf("line %d: output of node %s after its result line: %q", i+1, node, line)
		}
		a.output[node] = append(a.output[node], text)
		a.order = append(a.order, node)
	}
	return a
}

// agentLines are the lines the fake agent prints for node with -lines n -bytes size.
func agentLines(node string, n, size int) []string {
	lines := make([]string, n)
	for i := range lines {
		text := fmt.Sprintf("%s %06d ", node, i)
		lines[i] = text + strings.Repeat("x", max(0, size-len(text)))
	}
	return lines
}

// checkOutput compares a node's output with what was expected, naming the first difference.
func checkOutput(t testing.TB, node string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("node %s: output line %d is %q, want %q", node, i, got[i], want[i])
			return
		}
	}
	t.Errorf("node %s: %d output lines, want %d", node, len(got), len(want))
}

// checkResults checks that exactly the nodes of want have a result line, with these exit codes.
func checkResults(t testing.TB, a runAnswer, want map[string]int) {
	t.Helper()
	for node, code := range want {
		res, ok := a.results[node]
		switch {
		case !ok:
			t.Errorf("no result line for node %s", node)
		case res.ExitCode != code:
			t.Errorf("node %s: exit code %d, want %d (stderr %q)", node, res.ExitCode, code, res.Stderr)
		case res.DurationMS < 0:
			t.Errorf("node %s: negative duration %d ms", node, res.DurationMS)
		}
	}
	for node := range a.results {
		if _, ok := want[node]; !ok {
			t.Errorf("unexpected result line for node %s: %+v", node, a.results[node])
		}
	}
}

// waitUntil polls cond until it holds, failing the test after waitLong.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %s for %s", waitLong, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

func readPid(t testing.TB, dir, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil || pid <= 1 {
		t.Fatalf("%s: bad pid %q", name, b)
	}
	return pid
}

// gone tells whether a process has ended: it no longer exists, or is a zombie left to reap.
func gone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the command name, which is in parentheses and may hold anything.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && (fields[0] == "Z" || fields[0] == "X")
}

// pidFiles lists the pid files (*.pid) in dir.
func pidFiles(t testing.TB, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.pid"))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

// metric returns the value of a metric's series whose labels include the given ones
// (name="value" pairs), summed over the matching series; 0 when none matches.
func metric(t testing.TB, r *relaytest.Relay, name string, labels ...string) float64 {
	t.Helper()
	status, body := relaytest.Do(t, http.MethodGet, r.Admin+"/metrics", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	var sum float64
	for line := range strings.SplitSeq(body, "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || !(series == name || strings.HasPrefix(series, name+"{")) {
			continue
		}
		if !all(labels, func(l string) bool { return strings.Contains(series, l) }) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

func all[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if !f(v) {
			return false
		}
	}
	return true
}

// TestWebUIRequest: what the Rudder server sends when "trigger agent run" is clicked.
func TestWebUIRequest(t *testing.T) {
	t.Parallel()
	pids := t.TempDir()
	stderr := "warning: \"quoted\"\n\ta tab, a backslash \\, <html> & é\n"
	r := startRunRelay(t, "root", rootWith("node-1"), agentCommand(pids, "-lines", "3", "-stderr", stderr, "-exit", "3"), nil)

	for _, tc := range []struct {
		name, prefix, form string
		classesLine        []string
	}{
		{"web UI", api, "classes=c1,c2&keep_output=true&asynchronous=false", []string{"classes=c1,c2"}},
		{"conditions, versioned route", apiV1, "conditions=c_3&keep_output=true", []string{"classes=c_3"}},
		{"no classes: flag dropped", api, "keep_output=true&asynchronous=false&classes=", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := post(t, r.URL+tc.prefix+"/remote-run/nodes/node-1", tc.form,
				"User-Agent", "rudder/remote run query for node node-1")
			if status != http.StatusOK {
				t.Fatalf("status %d, body %q", status, body)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
			a := parseAnswer(t, body)
			checkOutput(t, "node-1", a.output["node-1"], append(tc.classesLine, agentLines("node-1", 3, 0)...))
			checkResults(t, a, map[string]int{"node-1": 3})
			if got := a.results["node-1"].Stderr; got != stderr {
				t.Errorf("stderr %q, want %q", got, stderr)
			}
			// The result is the last line, JSON-escaped: the stderr's newlines and quotes do
			// not break it, and nothing is HTML-escaped.
			lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, `{"node":"node-1","exit_code":3,"duration_ms":`) ||
				!strings.HasSuffix(last, `"stderr":"warning: \"quoted\"\n\ta tab, a backslash \\, <html> & é\n"}`) {
				t.Errorf("result line %q", last)
			}
		})
	}
}

// TestPostGenerationHook: the server's hook answers at once with an empty body; the runs go
// on and are counted.
func TestPostGenerationHook(t *testing.T) {
	t.Parallel()
	pids := t.TempDir()
	r := startRunRelay(t, "root", rootWith("id1", "id2", "id3"), agentCommand(pids, "-lines", "2", "-delay", "1s"), nil)

	status, hdr, body := post(t, r.URL+api+"/remote-run/nodes", "asynchronous=true&keep_output=false&nodes=id1,id2")
	if status != http.StatusOK || body != "" || hdr.Get("Content-Length") != "0" {
		t.Fatalf("answer %d, Content-Length %q, body %q; want 200 and an empty body", status, hdr.Get("Content-Length"), body)
	}
	// The agents take 2s: the answer came before they were done.
	if exists(pids, "id1.done") || exists(pids, "id2.done") {
		t.Error("the asynchronous call answered after the runs ended")
	}
	waitUntil(t, "both runs to end", func() bool { return exists(pids, "id1.done") && exists(pids, "id2.done") })
	waitUntil(t, "keel_remote_run_nodes_total to count 2 runs", func() bool {
		return metric(t, r, "keel_remote_run_nodes_total", `via="command"`, `result="ok"`) == 2
	})
	if got := pidFiles(t, pids); !slices.Equal(got, []string{"id1.pid", "id2.pid"}) {
		t.Errorf("agents run: %v, want id1 and id2 only", got)
	}
	if got := metric(t, r, "keel_remote_run_calls_total", `mode="async"`, `result="accepted"`); got != 1 {
		t.Errorf("keel_remote_run_calls_total{mode=async,result=accepted} = %v, want 1", got)
	}
}

// TestCalls: results only, /all at the root, unknown ids.
func TestCalls(t *testing.T) {
	t.Parallel()
	pids := t.TempDir()
	r := startRunRelay(t, "root", rootWith("a", "b", "c"), agentCommand(pids, "-lines", "5"), nil)
	reset := func(t *testing.T) {
		t.Helper()
		if err := os.RemoveAll(pids); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(pids, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("results only, after the runs", func(t *testing.T) {
		reset(t)
		status, _, body := post(t, r.URL+api+"/remote-run/nodes", "keep_output=false&asynchronous=false&nodes=a,b,c")
		if status != http.StatusOK {
			t.Fatalf("status %d, body %q", status, body)
		}
		a := parseAnswer(t, body)
		if len(a.output) != 0 || len(a.order) != 3 {
			t.Errorf("want 3 result lines only, got:\n%s", body)
		}
		checkResults(t, a, map[string]int{"a": 0, "b": 0, "c": 0})
		for _, n := range []string{"a", "b", "c"} {
			if !exists(pids, n+".done") {
				t.Errorf("the answer ended before node %s's run", n)
			}
		}
	})

	t.Run("all at the root includes the root", func(t *testing.T) {
		reset(t)
		status, _, body := post(t, r.URL+apiV1+"/remote-run/all", "keep_output=true")
		if status != http.StatusOK {
			t.Fatalf("status %d, body %q", status, body)
		}
		a := parseAnswer(t, body)
		checkResults(t, a, map[string]int{"root": 0, "a": 0, "b": 0, "c": 0})
		for _, n := range []string{"root", "a", "b", "c"} {
			checkOutput(t, n, a.output[n], agentLines(n, 5, 0))
		}
	})

	t.Run("unknown ids are reported per node", func(t *testing.T) {
		reset(t)
		status, _, body := post(t, r.URL+api+"/remote-run/nodes", "keep_output=true&nodes=ghost,a,ghost,other-1")
		if status != http.StatusOK {
			t.Fatalf("status %d, body %q", status, body)
		}
		a := parseAnswer(t, body)
		checkResults(t, a, map[string]int{"a": 0, "ghost": -1, "other-1": -1})
		for _, n := range []string{"ghost", "other-1"} {
			if want := "keel-relay: node " + n + " is not below this relay\n"; a.results[n].Stderr != want {
				t.Errorf("node %s: stderr %q, want %q", n, a.results[n].Stderr, want)
			}
		}
		status, _, body = post(t, r.URL+api+"/remote-run/nodes/ghost", "keep_output=true")
		if a := parseAnswer(t, body); status != http.StatusOK || len(a.order) != 1 || a.results["ghost"].ExitCode != -1 {
			t.Errorf("/nodes/ghost: %d %q, want 200 and a result line with exit code -1", status, body)
		}
		if got := pidFiles(t, pids); !slices.Equal(got, []string{"a.pid"}) {
			t.Errorf("agents run: %v, want a only", got)
		}
	})
}

// TestBadRequests: every bad parameter is refused with 400 naming it, and nothing runs.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	pids := t.TempDir()
	r := startRunRelay(t, "root", rootWith("a"), agentCommand(pids), nil)
	const classPattern = " does not match ^[A-Za-z0-9][A-Za-z0-9_]*$\n"
	const idRule = `: must be 1 to 255 characters among A-Z a-z 0-9 _ . - and not "." or ".."` + "\n"
	tests := []struct {
		name, path, form string
		want             string
	}{
		{"keep_output not a boolean", "/remote-run/all", "keep_output=yes", "keep_output: \"yes\" is not true or false\n"},
		{"keep_output in capitals", "/remote-run/all", "keep_output=TRUE", "keep_output: \"TRUE\" is not true or false\n"},
		{"keep_output twice", "/remote-run/all", "keep_output=true&keep_output=true", "keep_output: given 2 times\n"},
		{"asynchronous not a boolean", "/remote-run/nodes/a", "asynchronous=1", "asynchronous: \"1\" is not true or false\n"},
		{"asynchronous empty", "/remote-run/nodes/a", "asynchronous=", "asynchronous: \"\" is not true or false\n"},
		{"class with a dash", "/remote-run/all", "classes=ok,bad-class", `classes: class "bad-class"` + classPattern},
		{"class starting with _", "/remote-run/all", "classes=_x", `classes: class "_x"` + classPattern},
		{"class with a space", "/remote-run/all", "classes=a%20b", `classes: class "a b"` + classPattern},
		{"bad condition", "/remote-run/all", "classes=fine&conditions=no$pe", `conditions: class "no$pe"` + classPattern},
		{"class too long", "/remote-run/all", "classes=" + strings.Repeat("a", 1025),
			"classes: class \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"... is 1025 characters long, at most 1024\n"},
		{"nodes missing", "/remote-run/nodes", "keep_output=true", "nodes: missing: give node ids separated by commas\n"},
		{"nodes empty", "/remote-run/nodes", "nodes=", "nodes: missing: give node ids separated by commas\n"},
		{"nodes only commas", "/remote-run/nodes", "nodes=,,", "nodes: no node id given\n"},
		{"bad node id in the list", "/remote-run/nodes", "nodes=a,b/c", `nodes: invalid node id "b/c"` + idRule},
		{"bad node id in the path", "/remote-run/nodes/bad%20id", "", `node: invalid node id "bad id"` + idRule},
		{"body over 1 MiB", "/remote-run/nodes", "nodes=" + strings.Repeat("a,", 1<<19) + "b", "body: larger than 1048576 bytes\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, _, body := post(t, r.URL+api+tc.path, tc.form)
			if status != http.StatusBadRequest || body != tc.want {
				t.Errorf("got %d %q, want 400 %q", status, body, tc.want)
			}
		})
	}
	t.Cleanup(func() {
		if got := pidFiles(t, pids); len(got) != 0 {
			t.Errorf("bad requests ran agents: %v", got)
		}
	})
}

// TestMaxCalls: beyond remote_run.max_calls calls in progress, 429; the slot is freed when the
// call in progress ends.
func TestMaxCalls(t *testing.T) {
	t.Parallel()
	pids := t.TempDir()
	r := startRunRelay(t, "root", rootWith("a", "h"), agentCommand(pids, "-hang-nodes", "h"), func(c *config.Config) {
		c.RemoteRun.MaxCalls = 1
	})
	_, cancel := startCall(t, r.URL+api+"/remote-run/nodes/h", "keep_output=true")
	waitUntil(t, "the hanging agent to start", func() bool { return exists(pids, "h.pid") })

	for _, form := range []string{"keep_output=true", "asynchronous=true&nodes=a"} {
		status, hdr, body := post(t, r.URL+api+"/remote-run/nodes/a", form)
		want := "too many remote-run calls in progress (at most 1); retry later\n"
		if status != http.StatusTooManyRequests || body != want || hdr.Get("Retry-After") == "" {
			t.Errorf("%s: got %d %q (Retry-After %q), want 429 %q", form, status, body, hdr.Get("Retry-After"), want)
		}
	}
	if exists(pids, "a.pid") {
		t.Error("a refused call ran its node")
	}
	if got := metric(t, r, "keel_remote_run_calls_total", `result="refused"`); got != 2 {
		t.Errorf("keel_remote_run_calls_total{result=refused} = %v, want 2", got)
	}
	cancel()
	hung := readPid(t, pids, "h.pid")
	waitUntil(t, "the hanging agent to be killed", func() bool { return gone(hung) })
	waitUntil(t, "the call slot to be free", func() bool {
		status, _, body := post(t, r.URL+api+"/remote-run/nodes/a", "keep_output=true")
		return status == http.StatusOK && parseAnswer(t, body).results["a"].ExitCode == 0
	})
}

// TestInterleaved50: 50 nodes printing 200 lines each with random pauses, run at once: every
// node's output comes back whole, in order, unmixed, with one result line each.
func TestInterleaved50(t *testing.T) {
	t.Parallel()
	const nodes, lines, size = 50, 200, 80
	var ids []string
	for i := range nodes {
		ids = append(ids, fmt.Sprintf("n%02d", i))
	}
	r := startRunRelay(t, "root", rootWith(ids...),
		agentCommand(t.TempDir(), "-lines", strconv.Itoa(lines), "-jitter", "3ms", "-bytes", strconv.Itoa(size)), nil)
	status, _, body := post(t, r.URL+api+"/remote-run/nodes", "keep_output=true&asynchronous=false&nodes="+strings.Join(ids, ","))
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	a := parseAnswer(t, body)
	want := map[string]int{}
	for _, id := range ids {
		want[id] = 0
		checkOutput(t, id, a.output[id], agentLines(id, lines, size))
	}
	checkResults(t, a, want)
	if len(a.output) != nodes {
		t.Errorf("output from %d nodes, want %d", len(a.output), nodes)
	}
	// The test means something only if the nodes' lines did interleave.
	switches := 0
	for i := 1; i < len(a.order); i++ {
		if a.order[i] != a.order[i-1] {
			switches++
		}
	}
	if switches < 10*nodes {
		t.Errorf("only %d switches between nodes in %d lines: the runs did not interleave", switches, len(a.order))
	}
}

// TestHangingNodeCut: a node that hangs is cut at remote_run.timeout, its process group killed,
// and reported with exit code -1; the others finish normally.
func TestHangingNodeCut(t *testing.T) {
	t.Parallel()
	pids := t.TempDir()
	r := startRunRelay(t, "root", rootWith("a", "b", "h"),
		agentCommand(pids, "-lines", "3", "-stderr", "agent started\n", "-hang-nodes", "h", "-child"), func(c *config.Config) {
			c.RemoteRun.Timeout = time.Second
		})
	status, _, body := post(t, r.URL+api+"/remote-run/nodes", "keep_output=true&nodes=a,h,b")
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	a := parseAnswer(t, body)
	checkResults(t, a, map[string]int{"a": 0, "b": 0, "h": -1})
	for _, n := range []string{"a", "b", "h"} {
		checkOutput(t, n, a.output[n], agentLines(n, 3, 0))
	}
	h := a.results["h"]
	if want := "agent started\nkeel-relay: run cut at its deadline of 1s\n"; h.Stderr != want {
		t.Errorf("hanging node: stderr %q, want %q", h.Stderr, want)
	}
	if h.DurationMS < 1000 || h.DurationMS > 5000 {
		t.Errorf("hanging node: duration %d ms, want about 1000", h.DurationMS)
	}
	for _, f := range []string{"h.pid", "h.child.pid"} {
		pid := readPid(t, pids, f)
		waitUntil(t, f+" to be gone", func() bool { return gone(pid) })
	}
}

// TestClientDisconnect: a synchronous caller that goes away cancels its runs: every agent and
// the child it spawned are killed.
func TestClientDisconnect(t *testing.T) {
	t.Parallel()
	pids := t.TempDir()
	ids := []string{"h1", "h2", "h3", "h4"}
	r := startRunRelay(t, "root", rootWith(ids...), agentCommand(pids, "-lines", "1", "-hang", "-child"), nil)
	_, cancel := startCall(t, r.URL+api+"/remote-run/nodes", "keep_output=true&asynchronous=false&nodes="+strings.Join(ids, ","))
	var procs []int
	for _, id := range ids {
		waitUntil(t, id+"'s agent and child to start", func() bool { return exists(pids, id+".child.pid") })
		procs = append(procs, readPid(t, pids, id+".pid"), readPid(t, pids, id+".child.pid"))
	}
	for _, pid := range procs {
		if gone(pid) {
			t.Fatalf("process %d ended before the client went away", pid)
		}
	}
	cancel()
	start := time.Now()
	for _, pid := range procs {
		waitUntil(t, fmt.Sprintf("process %d to be killed", pid), func() bool { return gone(pid) })
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the processes took %s to go", took)
	}
	waitUntil(t, "the runs to be counted as errors", func() bool {
		return metric(t, r, "keel_remote_run_nodes_total", `result="error"`) == float64(len(ids)) &&
			metric(t, r, "keel_remote_run_nodes_running") == 0
	})
}

// recorded is a request seen by countingProxy.
type recorded struct {
	path string
	form url.Values
}

// countingProxy is a reverse proxy in front of a relay that records the requests it passes.
type countingProxy struct {
	*httptest.Server
	mu   sync.Mutex
	seen []recorded
}

func newCountingProxy(t testing.TB, target string) *countingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1 // pass the stream on as it comes
	rp.Transport = &http.Transport{DisableKeepAlives: true, Proxy: nil}
	p := &countingProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		p.mu.Lock()
		p.seen = append(p.seen, recorded{path: r.URL.Path, form: form})
		p.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// take returns the requests seen since the last call.
func (p *countingProxy) take() []recorded {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := p.seen
	p.seen = nil
	return seen
}

// TestSubRelay: nodes below a sub-relay run through it, one request per sub-relay with its
// share; its streamed answer is merged; a sub-relay that is down gets a failed result line
// for each node it should have run.
func TestSubRelay(t *testing.T) {
	t.Parallel()
	subPids, rootPids := t.TempDir(), t.TempDir()
	sub := startRunRelay(t, "relay1", nodeMap(
		mapNode{id: "relay1", parent: "root"}, // itself, as Rudder lists it
		mapNode{id: "s1", parent: "relay1"},
		mapNode{id: "s2", parent: "relay1"},
	), agentCommand(subPids, "-lines", "4"), asRelay(t))
	proxy := newCountingProxy(t, sub.URL)
	down := relaytest.DownAddr(t)
	root := startRunRelay(t, "root", nodeMap(
		mapNode{id: "root", parent: "root"},
		mapNode{id: "l1", parent: "root"},
		mapNode{id: "relay1", parent: "root", host: strings.TrimPrefix(proxy.URL, "http://")},
		mapNode{id: "s1", parent: "relay1"},
		mapNode{id: "s2", parent: "relay1"},
		mapNode{id: "relay2", parent: "root", host: down},
		mapNode{id: "d1", parent: "relay2"},
		mapNode{id: "d2", parent: "relay2"},
	), agentCommand(rootPids, "-lines", "2"), nil)

	t.Run("sub_relay_url http needs forward.allow_http", func(t *testing.T) {
		cfg := relaytest.Config(t, t.TempDir(), "root", nil)
		cfg.RemoteRun.SubRelayURL = "http://{hostname}"
		cfg.Forward.AllowHTTP = false
		cfg.Forward.SubRelayURL = "https://{hostname}"
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "remote_run.sub_relay_url") {
			t.Errorf("Validate = %v, want a refusal naming remote_run.sub_relay_url", err)
		}
	})

	t.Run("all at the root", func(t *testing.T) {
		status, _, body := post(t, root.URL+api+"/remote-run/all", "keep_output=true&asynchronous=false&classes=c1")
		if status != http.StatusOK {
			t.Fatalf("status %d %q", status, body)
		}
		a := parseAnswer(t, body)
		checkResults(t, a, map[string]int{"root": 0, "l1": 0, "relay1": 0, "relay2": 0, "s1": 0, "s2": 0, "d1": -1, "d2": -1})
		for _, n := range []string{"root", "l1", "relay1", "relay2"} {
			checkOutput(t, n, a.output[n], append([]string{"classes=c1"}, agentLines(n, 2, 0)...))
		}
		for _, n := range []string{"s1", "s2"} {
			checkOutput(t, n, a.output[n], append([]string{"classes=c1"}, agentLines(n, 4, 0)...))
			if !exists(subPids, n+".done") || exists(rootPids, n+".pid") {
				t.Errorf("node %s was not run by the sub-relay", n)
			}
		}
		for _, n := range []string{"d1", "d2"} {
			if s := a.results[n].Stderr; !strings.HasPrefix(s, "keel-relay: through sub-relay relay2: ") || !strings.Contains(s, down) {
				t.Errorf("node %s below the relay that is down: stderr %q", n, s)
			}
		}
		seen := proxy.take()
		if len(seen) != 1 || seen[0].path != api+"/remote-run/all" ||
			seen[0].form.Get("keep_output") != "true" || seen[0].form.Get("asynchronous") != "false" || seen[0].form.Get("classes") != "c1" {
			t.Errorf("requests to the sub-relay: %+v, want one POST .../remote-run/all with the call's fields", seen)
		}
	})

	t.Run("a mix of nodes", func(t *testing.T) {
		status, _, body := post(t, root.URL+api+"/remote-run/nodes", "keep_output=true&nodes=s2,l1,d1,ghost,s1")
		if status != http.StatusOK {
			t.Fatalf("status %d %q", status, body)
		}
		a := parseAnswer(t, body)
		checkResults(t, a, map[string]int{"l1": 0, "s1": 0, "s2": 0, "d1": -1, "ghost": -1})
		checkOutput(t, "s1", a.output["s1"], agentLines("s1", 4, 0))
		seen := proxy.take()
		if len(seen) != 1 || seen[0].path != api+"/remote-run/nodes" || seen[0].form.Get("nodes") != "s2,s1" {
			t.Errorf("requests to the sub-relay: %+v, want one POST .../remote-run/nodes with nodes=s2,s1", seen)
		}
	})

	t.Run("one node below the sub-relay", func(t *testing.T) {
		status, _, body := post(t, root.URL+apiV1+"/remote-run/nodes/s1", "keep_output=true&asynchronous=false")
		if status != http.StatusOK {
			t.Fatalf("status %d %q", status, body)
		}
		a := parseAnswer(t, body)
		checkResults(t, a, map[string]int{"s1": 0})
		checkOutput(t, "s1", a.output["s1"], agentLines("s1", 4, 0))
		seen := proxy.take()
		if len(seen) != 1 || seen[0].path != api+"/remote-run/nodes" || seen[0].form.Get("nodes") != "s1" {
			t.Errorf("requests to the sub-relay: %+v, want one POST .../remote-run/nodes with nodes=s1", seen)
		}
	})

	t.Run("results only through the sub-relay", func(t *testing.T) {
		status, _, body := post(t, root.URL+api+"/remote-run/nodes", "nodes=s1,d2")
		a := parseAnswer(t, body)
		if status != http.StatusOK || len(a.output) != 0 {
			t.Fatalf("got %d %q, want 200 and result lines only", status, body)
		}
		checkResults(t, a, map[string]int{"s1": 0, "d2": -1})
		proxy.take()
	})

	t.Run("all at a non-root relay leaves it out", func(t *testing.T) {
		status, _, body := post(t, sub.URL+api+"/remote-run/all", "keep_output=true")
		if status != http.StatusOK {
			t.Fatalf("status %d %q", status, body)
		}
		checkResults(t, parseAnswer(t, body), map[string]int{"s1": 0, "s2": 0})
		status, _, body = post(t, sub.URL+api+"/remote-run/nodes/relay1", "keep_output=true")
		if a := parseAnswer(t, body); status != http.StatusOK || a.results["relay1"].ExitCode != -1 || len(a.order) != 1 {
			t.Errorf("relay1 asked to run itself: %d %q, want one result line with exit code -1", status, body)
		}
		if exists(subPids, "relay1.pid") {
			t.Error("a non-root relay ran its own agent")
		}
	})

	t.Run("asynchronous through the sub-relay", func(t *testing.T) {
		for _, dir := range []string{subPids, rootPids} {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		failed := metric(t, root, "keel_remote_run_nodes_total", `via="sub-relay"`, `result="error"`)
		status, _, body := post(t, root.URL+api+"/remote-run/nodes", "asynchronous=true&keep_output=false&nodes=s1,l1,d1")
		if status != http.StatusOK || body != "" {
			t.Fatalf("got %d %q, want 200 and an empty body", status, body)
		}
		waitUntil(t, "s1 (at the sub-relay) and l1 (at the root) to run", func() bool {
			return exists(subPids, "s1.done") && exists(rootPids, "l1.done")
		})
		waitUntil(t, "d1's failure to be counted", func() bool {
			return metric(t, root, "keel_remote_run_nodes_total", `via="sub-relay"`, `result="error"`) == failed+1
		})
		seen := proxy.take()
		if len(seen) != 1 || seen[0].form.Get("nodes") != "s1" || seen[0].form.Get("asynchronous") != "true" || seen[0].form.Get("keep_output") != "false" {
			t.Errorf("requests to the sub-relay: %+v, want one with nodes=s1, asynchronous=true, keep_output=false", seen)
		}
	})
}

// startCall sends a remote-run call and returns once its answer has started; cancel ends it
// as a client going away would.
func startCall(t testing.TB, url, form string) (*http.Response, func()) {
	t.Helper()
	ctx, cancelCtx := context.WithCancel(context.Background())
	t.Cleanup(cancelCtx)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, func() {
		cancelCtx()
		_ = resp.Body.Close()
	}
}

// TestAsyncOutlivesClient: with asynchronous=true, keep_output=true, the output streams while
// the caller stays, and the runs go on once it has gone.
func TestAsyncOutlivesClient(t *testing.T) {
	t.Parallel()
	pids := t.TempDir()
	r := startRunRelay(t, "root", rootWith("a", "b"), agentCommand(pids, "-lines", "3", "-delay", "400ms"), nil)
	resp, cancel := startCall(t, r.URL+api+"/remote-run/nodes", "asynchronous=true&keep_output=true&nodes=a,b")
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasSuffix(line, " 000000 \n") {
		t.Fatalf("first line %q (%v), want a node's first output line", line, err)
	}
	cancel()
	waitUntil(t, "the runs to end after the caller left", func() bool { return exists(pids, "a.done") && exists(pids, "b.done") })
	waitUntil(t, "the runs to be counted", func() bool {
		return metric(t, r, "keel_remote_run_nodes_total", `via="command"`, `result="ok"`) == 2
	})
}

// TestSubRelayDisconnect: a synchronous caller of the root that goes away cancels the call to
// the sub-relay, which kills its runs.
func TestSubRelayDisconnect(t *testing.T) {
	t.Parallel()
	subPids := t.TempDir()
	sub := startRunRelay(t, "relay1", nodeMap(mapNode{id: "relay1", parent: "root"}, mapNode{id: "s1", parent: "relay1"}),
		agentCommand(subPids, "-lines", "1", "-hang", "-child"), asRelay(t))
	root := startRunRelay(t, "root", nodeMap(
		mapNode{id: "root", parent: "root"},
		mapNode{id: "relay1", parent: "root", host: strings.TrimPrefix(sub.URL, "http://")},
		mapNode{id: "s1", parent: "relay1"},
	), agentCommand(t.TempDir()), nil)
	_, cancel := startCall(t, root.URL+api+"/remote-run/nodes/s1", "keep_output=true")
	waitUntil(t, "s1's agent to start at the sub-relay", func() bool { return exists(subPids, "s1.child.pid") })
	procs := []int{readPid(t, subPids, "s1.pid"), readPid(t, subPids, "s1.child.pid")}
	cancel()
	for _, pid := range procs {
		waitUntil(t, fmt.Sprintf("process %d to be killed", pid), func() bool { return gone(pid) })
	}
}

// TestHalfClosedCaller: a synchronous caller that shuts down its sending side after the request
// is taken as gone (net/http cancels the request then): its runs are cancelled and killed, and
// the answer it can still read is a real one, saying why, never an empty success.
func TestHalfClosedCaller(t *testing.T) {
	t.Parallel()
	pids := t.TempDir()
	r := startRunRelay(t, "root", rootWith("h1"), agentCommand(pids, "-lines", "1", "-hang", "-child"), nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	form := "keep_output=false&asynchronous=false&nodes=h1"
	fmt.Fprintf(conn, "POST %s/remote-run/nodes HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", api, len(form), form)
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitLong))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200 (the stream starts at once)", resp.StatusCode)
	}
	a := parseAnswer(t, string(body))
	checkResults(t, a, map[string]int{"h1": runoutput.NoExitCode})
	if got := a.results["h1"].Stderr; !strings.Contains(got, "cancelled") || !strings.Contains(got, remoterun.ErrCallerGone.Error()) {
		t.Errorf("stderr %q, want it to say the run was cancelled because the caller closed its connection", got)
	}
	for _, f := range []string{"h1.pid", "h1.child.pid"} {
		if exists(pids, f) {
			pid := readPid(t, pids, f)
			waitUntil(t, f+" to be gone", func() bool { return gone(pid) })
		}
	}
}
