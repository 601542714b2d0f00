package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/inspect"
	"github.com/keel-relay/keel/relay/relaytest"
	"github.com/keel-relay/keel/storage"
)

// checkGolden compares got with testdata/name (-update rewrites it).
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (-update rewrites it):\n%s", golden, got)
	}
}

// TestInspectTablesGolden: the tables and the status screen, from fixed documents.
func TestInspectTablesGolden(t *testing.T) {
	now := time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	oldest := at(-3 * time.Hour)
	var b bytes.Buffer
	writeFilesTable(&b, inspect.Files{Target: "n1", Total: 3, Files: []inspect.File{
		{Target: "n1", Source: "root", ID: "policy.tgz", Size: 2048, Algorithm: "sha256",
			Hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Stored: at(-time.Hour), Expires: at(5 * time.Hour)},
		{Target: "n1", Source: "n2", ID: "x", Size: 0, Algorithm: "sha512", Hash: "ab", Stored: at(-time.Minute), Expires: at(72 * time.Hour)},
	}}, now)
	checkGolden(t, "inspect-files.golden", b.String())

	b.Reset()
	writeQueueTable(&b, inspect.Queue{Total: 7, Bytes: 12345, OldestQueued: &oldest, Jobs: []inspect.Job{
		{ID: "17", File: "far/root/f1", NextHop: "upstream", Size: 100, Queued: oldest, Due: at(30 * time.Second), Attempts: 12,
			LastError: "Put \"http://up:8080/\":\ndial tcp: connection refused"},
		{ID: "23", File: "n9/root/f2", NextHop: "sub1", Size: 12245, Queued: at(-time.Minute), Due: at(-time.Second)},
	}}, now)
	checkGolden(t, "inspect-queue.golden", b.String())

	b.Reset()
	writeNodesTable(&b, inspect.Nodes{Self: "relay1", Digest: "0123456789abcdef0123", Source: "/etc/keel/nodes.json", Total: 4, Mine: 2, Below: 3,
		Nodes: []inspect.Node{
			{ID: "n1", Hostname: "n1.test", PolicyServer: "relay1", KeyHash: "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", Route: "mine"},
			{ID: "n9", Hostname: "n9.test", PolicyServer: "sub1", Route: "below-sub-relay", Via: "sub1"},
			{ID: "root", Hostname: "root.test", Route: "unknown"},
		}})
	checkGolden(t, "inspect-nodes.golden", b.String())

	b.Reset()
	writeRoute(&b, inspect.Route{Node: "n9", InMap: true, Parent: "n8", Chain: []string{"n8", "sub1", "relay1"}, Destination: inspect.DestSubRelay,
		Via: "sub1", Why: "it hangs below sub1", SourceWhy: "its entry has no key-hash"})
	writeRoute(&b, inspect.Route{Node: "zz", Destination: inspect.DestUpstream, Why: "it is not in this relay's node map", SourceWhy: "not in the node map"})
	checkGolden(t, "inspect-route.golden", b.String())

	b.Reset()
	edge := 2
	writeStatus(&b, statusReport{Source: "admin API 127.0.0.1:3031", Running: true, Health: "disk_full", Reason: "12 MiB free, writes need 200 MiB",
		NodeID: "relay1", Role: "relay", Version: "v1.2.3", UptimeSec: 7200,
		Memory:   &httpapi.MemoryStatus{LimitBytes: 256 << 20, Source: "cgroup", NearAtBytes: 230 << 20, InUseBytes: 40 << 20},
		Store:    storeReport{Files: 12, Bytes: 34 << 20, Disk: &httpapi.DiskStatus{FreeBytes: 12 << 20, NeedBytes: 200 << 20, Full: true}},
		Queue:    inspect.Queue{Total: 7, Bytes: 12345, OldestQueued: &oldest, LastError: "dial tcp: connection refused", LastErrorJob: "17"},
		Uploads:  &httpapi.AgentUploadsStatus{Waiting: 3, Failed: 1, WaitingBytes: 4096, OldestWaitingSec: 600},
		NodeMap:  httpapi.NodeMapStatus{Nodes: 4, LoadedAt: at(-time.Hour), Kept: true},
		Upstream: &upstreamCheck{URL: "https://root.test", Address: "root.test:443", Error: "no answer within 3s"}, Edge: &edge,
	}, now)
	writeStatus(&b, statusReport{Source: "data_dir /var/lib/keel (relay stopped)", Health: "stopped", NodeID: "root", Role: "root",
		Memory: &httpapi.MemoryStatus{LimitBytes: 0, Source: "none"}, Queue: inspect.Queue{}}, now)
	checkGolden(t, "inspect-status.golden", b.String())
}

// inspectNodes are the test relay's node map: relay1 under root, n1 and sub1 attached to
// relay1, n9 below sub1.
func inspectNodes() (*relaytest.Node, []byte) {
	n1 := relaytest.NewNode("n1", "relay1", 0)
	return n1, relaytest.NodeMap(relaytest.NewNode("relay1", "root", 1), n1,
		relaytest.NewNode("sub1", "relay1", 2), relaytest.NewNode("n9", "sub1", 3))
}

// writeInspectConfig writes the config file the commands read: cfg's relay, with the given
// admin listener.
func writeInspectConfig(t *testing.T, path string, cfg *config.Config, admin string) {
	t.Helper()
	y := fmt.Sprintf("node_id: %s\nrole: %s\nupstream: %q\ndata_dir: %q\nnodes_file: %q\nforward:\n  allow_http: true\n  sub_relay_url: \"http://{hostname}\"\nadmin:\n  listen: %s\n  token_file: %q\n",
		cfg.NodeID, cfg.Role, cfg.Upstream, cfg.DataDir, cfg.NodesFile, admin, cfg.Admin.TokenFile)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runCmd runs keel-relay with args.
func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestInspectOnlineThenOffline: a relay (its upstream down) keeps a file for n1 and queues
// two forwards (to the upstream, to sub1). The commands read them through the admin API while
// it runs (the store is locked), then from the data directory once it has stopped; retry and
// drop change the queue both ways.
func TestInspectOnlineThenOffline(t *testing.T) {
	dir := t.TempDir()
	n1, nodes := inspectNodes()
	cfg := relaytest.Config(t, dir, "relay1", nodes)
	cfg.Role, cfg.Upstream = config.RoleRelay, "http://"+relaytest.DownAddr(t)
	cfg.Admin.TokenFile = filepath.Join(dir, "admin-token")
	cfg.Forward.MinBackoff, cfg.Forward.MaxBackoff = time.Hour, time.Hour
	r := relaytest.Start(t, cfg)
	for _, target := range []string{"n1", "far", "n9"} {
		if code, body := r.Put(t, "/shared-files/"+target+"/n1/f-"+target+"?ttl=1h", relaytest.SignedBody(t, n1, []byte("content of "+target), "")); code != http.StatusOK {
			t.Fatalf("PUT for %s: %d %s", target, code, body)
		}
	}
	cfgPath := filepath.Join(dir, "relay.yaml")
	writeInspectConfig(t, cfgPath, cfg, strings.TrimPrefix(r.Admin, "http://"))

	// Online: the store is locked, the commands say so and ask the admin API.
	code, out, errOut := runCmd("files", "ls", "--config", cfgPath)
	if code != 0 || !strings.Contains(errOut, "the relay is running: asking its admin API") ||
		!strings.Contains(out, "f-n1") || !strings.Contains(out, "1 of 1 file(s) kept") {
		t.Fatalf("files ls online: %d\n%s%s", code, out, errOut)
	}
	var q inspect.Queue
	relaytest.Eventually(t, 10*time.Second, "both forwards failed once", func() bool {
		_, out, _ := runCmd("queue", "ls", "--json", "--config", cfgPath)
		q = inspect.Queue{}
		if json.Unmarshal([]byte(out), &q) != nil || q.Total != 2 || len(q.Jobs) != 2 {
			return false
		}
		return q.Jobs[0].Attempts > 0 && q.Jobs[1].Attempts > 0
	})
	if q.LastError == "" || q.OldestQueued == nil {
		t.Errorf("queue summary: %+v", q)
	}
	hops := map[string]string{}
	for _, j := range q.Jobs {
		hops[j.File] = j.NextHop
	}
	if hops["far/n1/f-far"] != "upstream" || hops["n9/n1/f-n9"] != "sub1" {
		t.Fatalf("next hops: %v", hops)
	}
	code, out, errOut = runCmd("nodes", "route", "--config", cfgPath, "n9")
	if code != 0 || !strings.Contains(out, "node n9: sub-relay sub1") || !strings.Contains(out, "chain: sub1 → relay1") {
		t.Fatalf("nodes route online: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCmd("status", "--config", cfgPath, "--timeout", "1s")
	if code != 0 || !strings.Contains(out, "relay1 (relay test): ok") || !strings.Contains(out, "queue:     2 forward(s)") ||
		!strings.Contains(out, "UNREACHABLE") || !strings.Contains(out, "edge:      0 daemon(s)") {
		t.Fatalf("status online: %d\n%s%s", code, out, errOut)
	}
	// Retry online: the job is due now (the worker tries it at once, and fails again).
	var far inspect.Job
	for _, j := range q.Jobs {
		if j.NextHop == "upstream" {
			far = j
		}
	}
	code, out, errOut = runCmd("queue", "retry", "--config", cfgPath, far.ID)
	if code != 0 || !strings.Contains(out, "job "+far.ID+" (far/n1/f-far to upstream) is due now") {
		t.Fatalf("queue retry online: %d\n%s%s", code, out, errOut)
	}
	relaytest.Eventually(t, 10*time.Second, "the retried job attempted again", func() bool {
		_, out, _ := runCmd("queue", "ls", "--json", "--config", cfgPath)
		var q2 inspect.Queue
		if json.Unmarshal([]byte(out), &q2) != nil {
			return false
		}
		for _, j := range q2.Jobs {
			if j.ID == far.ID {
				return j.Attempts > far.Attempts
			}
		}
		return false
	})
	if code, _, errOut := runCmd("queue", "drop", "--config", cfgPath, "999999"); code != 1 || !strings.Contains(errOut, "404") {
		t.Fatalf("drop of no job online: %d %s", code, errOut)
	}
	if code, _, errOut := runCmd("queue", "drop", "--config", cfgPath, "x1"); code != 1 || !strings.Contains(errOut, "400") {
		t.Fatalf("drop of a bad id online: %d %s", code, errOut)
	}
	// Without the token the relay refuses (a config naming none, --admin).
	noToken := filepath.Join(dir, "no-token.yaml")
	if err := os.WriteFile(noToken, []byte("node_id: relay1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd("queue", "ls", "--admin", strings.TrimPrefix(r.Admin, "http://"), "--config", noToken); code != 1 || !strings.Contains(errOut, "401") {
		t.Fatalf("no token: %d %s", code, errOut)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}

	// Offline: the same answers from the data directory.
	code, out, errOut = runCmd("files", "ls", "--config", cfgPath, "n1")
	if code != 0 || strings.Contains(errOut, "running") || !strings.Contains(out, "1 of 1 file(s) kept for n1") {
		t.Fatalf("files ls offline: %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCmd("files", "ls", "--config", cfgPath, "n9")
	if code != 0 || !strings.Contains(out, "0 of 0 file(s) kept for n9") {
		t.Fatalf("files ls n9 offline: %d\n%s", code, out)
	}
	code, out, errOut = runCmd("nodes", "ls", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "below-sub-relay via sub1") || !strings.Contains(out, "4 of 4 node(s) in the map of relay1: 2 attached here, 3 below it in all") {
		t.Fatalf("nodes ls offline: %d\n%s%s", code, out, errOut)
	}
	var rt inspect.Route
	code, out, _ = runCmd("nodes", "route", "--json", "--config", cfgPath, "far")
	if code != 0 || json.Unmarshal([]byte(out), &rt) != nil || rt.Destination != inspect.DestUpstream || rt.SourceAccepted {
		t.Fatalf("nodes route far offline: %d\n%s", code, out)
	}
	code, out, _ = runCmd("nodes", "route", "--config", cfgPath, "n1")
	if code != 0 || !strings.Contains(out, "node n1: mine") || !strings.Contains(out, "as a source: accepted") || !strings.Contains(out, n1.Pin()) {
		t.Fatalf("nodes route n1 offline: %d\n%s", code, out)
	}
	var rep statusReport
	code, out, _ = runCmd("status", "--json", "--timeout", "0", "--config", cfgPath)
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Health != "stopped" || rep.Running || rep.Store.Files != 1 ||
		rep.Queue.Total != 2 || rep.NodeMap.Nodes != 4 || rep.Uploads == nil {
		t.Fatalf("status offline: %d\n%s", code, out)
	}
	var jobs inspect.Queue
	_, out, _ = runCmd("queue", "ls", "--json", "--config", cfgPath)
	if err := json.Unmarshal([]byte(out), &jobs); err != nil || len(jobs.Jobs) != 2 {
		t.Fatalf("queue ls offline: %v\n%s", err, out)
	}
	sub := jobs.Jobs[0]
	if sub.NextHop != "sub1" {
		sub = jobs.Jobs[1]
	}
	code, out, errOut = runCmd("queue", "retry", "--config", cfgPath, sub.ID)
	if code != 0 || !strings.Contains(out, "is due now (the relay is stopped") {
		t.Fatalf("queue retry offline: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCmd("queue", "drop", "--config", cfgPath, far.ID)
	if code != 0 || !strings.Contains(out, "job "+far.ID+" (far/n1/f-far to upstream") {
		t.Fatalf("queue drop offline: %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCmd("queue", "retry", "--config", cfgPath, "01"); code != 2 || !strings.Contains(errOut, "bad job id") {
		t.Fatalf("retry of a bad id offline: %d %s", code, errOut)
	}
	// The effects, in the store itself.
	s, err := storage.Open(relay.StorageOptions(cfg), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.FindJob(far.ID); err == nil {
		t.Error("the dropped job is still queued")
	}
	j, err := s.FindJob(sub.ID)
	if err != nil || j.Due.After(time.Now()) || j.Attempts != sub.Attempts {
		t.Errorf("retried job: %+v, %v (want due now, %d attempts)", j, err, sub.Attempts)
	}
	if s.JobCount() != 1 {
		t.Errorf("JobCount = %d, want 1", s.JobCount())
	}
}

// TestInspectRefusals: usage errors exit 2 before anything is opened; a missing data
// directory is not created.
func TestInspectRefusals(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(cfgPath, []byte("node_id: r\ndata_dir: "+filepath.Join(dir, "nowhere")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"files"}, 2, "missing command"},
		{[]string{"files", "rm"}, 2, "unknown subcommand"},
		{[]string{"files", "ls", "a", "b"}, 2, "wrong number of arguments"},
		{[]string{"files", "ls", "--limit", "0", "--config", cfgPath}, 2, "--limit must be"},
		{[]string{"queue", "retry"}, 2, "wrong number of arguments"},
		{[]string{"queue", "ls", "x"}, 2, "wrong number of arguments"},
		{[]string{"nodes", "route"}, 2, "wrong number of arguments"},
		{[]string{"status", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"files", "ls", "--config", cfgPath}, 1, "no store to inspect"},
		{[]string{"nodes", "ls", "--config", filepath.Join(dir, "missing.yaml")}, 1, "missing.yaml"},
	} {
		code, _, errOut := runCmd(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: %d %q, want %d and %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "nowhere")); err == nil {
		t.Error("the missing data directory was created")
	}
	if code, out, _ := runCmd("queue", "--help"); code != 0 || !strings.Contains(out, "retry ID") {
		t.Errorf("queue help: %d %s", code, out)
	}
}
