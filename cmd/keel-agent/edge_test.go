//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keel-relay/keel/relay/relaytest"
)

// edgeRelay runs keel-relay with its edge API on a free port and a node map holding node.
func edgeRelay(t *testing.T, dir, node string) (r *relayProc, edgeAddr string) {
	t.Helper()
	m := map[string]map[string]string{
		"root": {"hostname": "root.example", "policy-server": "root"},
		node:   {"hostname": "edge.example", "policy-server": "root"},
	}
	edgeAddr = freeAddr(t)
	r = runRelay(t, dir, m, fmt.Sprintf("edge:\n  listen: %s\n  drain_grace: 1s\n", edgeAddr))
	return r, edgeAddr
}

// relayHolds reports whether the relay's admin API shows node's stream as connected: the
// daemon logs "edge: connected" a moment before the relay has registered the stream.
func relayHolds(t *testing.T, r *relayProc, node string) bool {
	t.Helper()
	resp, err := http.Get(r.admin + "/edge/daemons/" + node)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Status string `json:"status"`
	}
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&d) == nil && d.Status == "connected"
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// remoteRun asks the relay, as the Rudder server does, to run the agent on node.
func remoteRun(t *testing.T, api, node, classes string) string {
	t.Helper()
	form := url.Values{"classes": {classes}, "keep_output": {"true"}, "asynchronous": {"false"}}
	resp, err := http.PostForm(api+"/rudder/relay-api/remote-run/nodes/"+node, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("remote run: %s %s", resp.Status, b)
	}
	return string(b)
}

// vmRSS returns a process's resident set size in KiB.
func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestEdgeDaemonBinary: the real binaries end to end: `keel-relay edge enroll-token`,
// `keel-agent edge enroll`, `keel-agent edge run`, a Rudder remote run through the
// relay that reaches the node over its edge stream, `keel-agent edge rotate-key` while the
// daemon runs, and SIGTERM. It reports the daemon's RSS after 5 s idle.
func TestEdgeDaemonBinary(t *testing.T) {
	dir := t.TempDir()
	node := uuid.NewString()
	relay, edgeAddr := edgeRelay(t, dir, node)
	api, relayConf := relay.api, relay.conf

	tok := exec.Command(relayBin, "edge", "enroll-token", "--config", relayConf, "--tenant", "acme", "--label", "test")
	tok.Env = cleanEnv()
	tokOut, err := tok.Output()
	if err != nil {
		t.Fatalf("enroll-token: %v", err)
	}
	token := strings.TrimSpace(string(tokOut))

	script, err := filepath.Abs(filepath.Join("..", "..", "agent", "edged", "testdata", "fake-agent.sh"))
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "marker")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "agent.yaml")
	y := fmt.Sprintf("node_id: %s\nlog: {level: debug}\nedge:\n  relay: %s\n  key_file: %q\n  token_file: %q\n  tools:\n    agent_run:\n      command: [/bin/sh, %q, lines, %q, '3', -D, '{classes}']\n",
		node, edgeAddr, filepath.Join(dir, "edge.key"), filepath.Join(dir, "token"), script, marker)
	if err := os.WriteFile(conf, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runAgent(t, "edge", "enroll", "--relay", edgeAddr, "--token", token, "--config", conf); r.code != 0 || !strings.Contains(r.stdout, "enrolled: node "+node) {
		t.Fatalf("enroll: %s", r)
	}
	if r := runAgent(t, "edge", "enroll", "--token", token, "--config", conf); r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("second enroll: %s", r)
	}

	daemon := exec.Command(agentBin, "edge", "run", "--config", conf)
	daemon.Env = cleanEnv()
	logs := &relaytest.SyncBuffer{}
	daemon.Stdout, daemon.Stderr = logs, logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	t.Cleanup(func() {
		_ = daemon.Process.Kill()
		if t.Failed() {
			t.Logf("--- keel-agent output ---\n%s", logs.String())
		}
	})
	waitUntil(t, "the edge stream", func() bool { return relayHolds(t, relay, node) })

	out := remoteRun(t, api, node, "a,b")
	for _, want := range []string{node + ":start lines " + marker + " 3 -D a,b", node + ":line 2", `"exit_code":3`} {
		if !strings.Contains(out, want) {
			t.Errorf("remote run output lacks %q:\n%s", want, out)
		}
	}

	// At rest: 5 s idle on the stream, then its resident memory.
	time.Sleep(5 * time.Second)
	rss := vmRSS(t, daemon.Process.Pid)
	t.Logf("keel-agent edge run: VmRSS %d KiB after 5 s idle, connected", rss)
	if rss > 64<<10 {
		t.Errorf("VmRSS %d KiB", rss)
	}

	if r := runAgent(t, "edge", "rotate-key", "--config", conf); r.code != 0 || !strings.Contains(r.stdout, "key rotated") {
		t.Fatalf("rotate-key: %s", r)
	}
	waitUntil(t, "the daemon to load the new key", func() bool { return strings.Contains(logs.String(), "credentials reloaded") })
	if out := remoteRun(t, api, node, ""); !strings.Contains(out, `"exit_code":3`) || !strings.Contains(out, node+":start lines "+marker+" 3\n") {
		t.Errorf("remote run after rotate-key:\n%s", out)
	}

	if err := daemon.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("keel-agent edge run after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("keel-agent edge run did not stop on SIGTERM")
	}
}

func TestEdgeCLIUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"edge"}, 2, "keel-agent edge: missing command"},
		{[]string{"edge", "fly"}, 2, `unknown subcommand "fly"`},
		{[]string{"edge", "enroll", "--config", "/nonexistent.yaml"}, 1, "nonexistent.yaml"},
		{[]string{"edge", "run", "extra"}, 2, `unexpected argument "extra"`},
	} {
		r := runAgent(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("%v: %s, want exit %d and %q", tc.args, r, tc.code, tc.want)
		}
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(conf, []byte("node_id: n1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"edge", "enroll", "--token", "x", "--config", conf}, 2, "no relay"},
		{[]string{"edge", "enroll", "--relay", "127.0.0.1:1", "--config", conf}, 2, "--token is required"},
		{[]string{"edge", "run", "--config", conf}, 2, "edge.relay is not set"},
		{[]string{"edge", "rotate-key", "--config", conf}, 2, "no relay"},
	} {
		r := runAgent(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: %s, want exit %d and %q", tc.args, r, tc.code, tc.want)
		}
	}
}
