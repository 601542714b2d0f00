package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/keel-relay/keel/edge/admin"
	"github.com/keel-relay/keel/edge/edgesim"
	"github.com/keel-relay/keel/edge/keys"
	edgeserver "github.com/keel-relay/keel/edge/server"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/relay/relaytest"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestDaemonTableGolden(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(-d); return &x }
	ds := []admin.Daemon{
		{NodeID: "0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4b", Tenant: "acme", Label: "web-1", Status: admin.StatusConnected, LastSeen: at(12 * time.Second),
			Capabilities: admin.Capabilities{OS: "linux", Arch: "arm64", Tools: []string{"agent-run", "echo"}, Labels: map[string]string{"site": "par", "rack": "b2"}},
			Tags:         map[string]string{"role": "web", "env": "prod"}},
		{NodeID: "1c0f3a5b-2d4e-4f60-9b8c-0d1e2f3a4b5c", Tenant: "acme", Label: "db", Status: admin.StatusUnhealthy, LastSeen: at(3 * time.Minute),
			Capabilities: admin.Capabilities{OS: "linux", Arch: "amd64", Tools: []string{"agent-run"}}, Tags: map[string]string{}},
		{NodeID: "2d1a4b6c-3e5f-4a71-8c9d-1e2f3a4b5c6d", Tenant: "other", Status: admin.StatusDisconnected, LastSeen: at(50 * time.Hour)},
		{NodeID: "3e2b5c7d-4f60-4b82-9dae-2f3a4b5c6d7e", Tenant: "acme", Label: "old", Status: admin.StatusRevoked},
	}
	var buf bytes.Buffer
	writeDaemonTable(&buf, ds, now)
	golden := filepath.Join("testdata", "edge-ls.golden")
	if *updateGolden {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if buf.String() != string(want) {
		t.Fatalf("table differs from %s (-update rewrites it):\n%s", golden, buf.String())
	}
}

// TestEdgeCLI drives the edge subcommands against a real relay with real edge daemons.
func TestEdgeCLI(t *testing.T) {
	cfg := relaytest.Config(t, t.TempDir(), "root", nil)
	cfg.Edge.AttestPerMinute = 1000
	r := relaytest.Start(t, cfg)
	key, err := keys.Load(edgeserver.SigningKeyPath(cfg.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(r.EdgeAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := edgepb.NewNodeClusterServiceClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	handler := func(_ context.Context, inv *edgepb.InvokeTool, progress func(*edgepb.Chunk)) *edgepb.EdgeResult {
		progress(&edgepb.Chunk{Kind: &edgepb.Chunk_Stdout{Stdout: []byte("hello " + inv.GetArgs().GetFields()["who"].GetStringValue() + "\n")}})
		code := int32(0)
		if inv.GetToolName() == "fail" {
			code = 2
			progress(&edgepb.Chunk{Kind: &edgepb.Chunk_Stderr{Stderr: []byte("it broke\n")}})
		}
		return &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Ok_{Ok: &edgepb.EdgeResult_Ok{ExitCode: code}}}
	}
	var ids []string
	for i := range 2 {
		tok, _, err := edgeserver.EnrollmentToken(key, keys.Issuer("root"), "acme", "cli-"+string(rune('a'+i)), time.Minute, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		id, err := edgesim.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		c := &edgepb.EdgeCapabilities{Os: "linux", Arch: "amd64", LocalTools: []string{"echo"}}
		if err := id.Enroll(ctx, client, tok, c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id.NodeID)
		if i == 0 {
			go func() { _ = id.Run(ctx, client, edgesim.Options{Capabilities: c, Handler: handler}) }()
		}
	}
	adminAddr := strings.TrimPrefix(r.Admin, "http://")
	edge := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"edge", args[0], "--admin", adminAddr}, args[1:]...), &out, &errb)
		return code, out.String(), errb.String()
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, out, _ := edge("ls")
		if strings.Contains(out, "connected") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon never connected:\n%s", out)
		}
	}
	code, out, errs := edge("ls")
	if code != 0 || !strings.Contains(out, ids[0]) || !strings.Contains(out, ids[1]) || !strings.Contains(out, "disconnected") || !strings.Contains(out, "2 daemon(s)") {
		t.Fatalf("ls: %d\n%s%s", code, out, errs)
	}
	if code, out, errs := edge("tag", ids[0], "role=web", "env=prod"); code != 0 || !strings.Contains(out, "env=prod,role=web") {
		t.Fatalf("tag: %d %s %s", code, out, errs)
	}
	if code, out, errs := edge("show", ids[0]); code != 0 || !strings.Contains(out, `"role": "web"`) || !strings.Contains(out, `"status": "connected"`) {
		t.Fatalf("show: %d %s %s", code, out, errs)
	}
	code, out, errs = edge("invoke", "--tags", "role=web", "--timeout", "30s", "--progress", "echo", "who=world")
	if code != 0 || !strings.Contains(out, ids[0]+":hello world\n") || !strings.Contains(out, ids[0]+": [exit 0 after") ||
		!strings.Contains(errs, "fleet command ") || !strings.Contains(errs, "progress: 1/1 node(s) done, 0 failed\n") ||
		!strings.Contains(errs, "1 node(s), 0 failed") {
		t.Fatalf("invoke: %d\n%s%s", code, out, errs)
	}
	code, out, errs = edge("invoke", "--node", ids[0], "fail")
	if code != 1 || !strings.Contains(out, "[FAILED exit 2") || !strings.Contains(errs, ids[0]+": stderr: it broke") ||
		strings.Contains(errs, "progress:") { // not a terminal, no --progress
		t.Fatalf("failing invoke: %d\n%s%s", code, out, errs)
	}
	code, out, _ = edge("invoke", "--node", ids[1], "echo") // enrolled, not connected
	if code != 1 || !strings.Contains(out, "[FAILED exit -1") {
		t.Fatalf("invoke on a disconnected daemon: %d\n%s", code, out)
	}
	if code, out, errs := edge("drain"); code != 0 || !strings.Contains(out, "drain sent to 1 daemon(s)") {
		t.Fatalf("drain: %d %s %s", code, out, errs)
	}
	if code, out, errs := edge("push-config", ids[0], "v2", `{"a":1}`); code != 0 {
		t.Fatalf("push-config: %d %s %s", code, out, errs)
	}
	if code, out, errs := edge("revoke", ids[1]); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %d %s %s", code, out, errs)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"show", "nope"}, 2, "not a UUID"},
		{[]string{"show", "0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4b"}, 1, "404"},
		{[]string{"tag", ids[0], "novalue"}, 2, "key=value"},
		{[]string{"cancel", "x"}, 2, "not a UUID"},
		{[]string{"cancel", "0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4b"}, 1, "no running fleet"},
		{[]string{"invoke", "echo"}, 2, "say where"},
		{[]string{"invoke", "--node", ids[1], "echo"}, 1, "409"},
		{[]string{"drain", "a", "b"}, 2, "usage"},
		{[]string{"ls", "extra"}, 2, "want 0 argument"},
	} {
		code, _, errs := edge(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("edge %v: %d %q, want %d with %q", tc.args, code, errs, tc.code, tc.msg)
		}
	}
}

// TestAdminTokenCLI: with admin.token_file, the edge commands and an online backup send the
// token read from the config's file; without it the relay's 401 reaches the operator.
func TestAdminTokenCLI(t *testing.T) {
	dir := t.TempDir()
	cfg := relaytest.Config(t, dir, "root", nil)
	cfg.Admin.TokenFile = filepath.Join(dir, "admin.token")
	r := relaytest.Start(t, cfg)
	adminAddr := strings.TrimPrefix(r.Admin, "http://")
	conf := filepath.Join(dir, "relay.yaml")
	y := fmt.Sprintf("node_id: root\ndata_dir: %q\nhttp: {listen: '127.0.0.1:0'}\nadmin: {listen: %q, token_file: %q}\nedge: {listen: '127.0.0.1:0'}\n",
		cfg.DataDir, adminAddr, cfg.Admin.TokenFile)
	if err := os.WriteFile(conf, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, errs := cli("edge", "ls", "--config", conf); code != 0 || !strings.Contains(out, "0 daemon(s)") {
		t.Errorf("edge ls with the token: %d\n%s%s", code, out, errs)
	}
	if code, out, errs := cli("edge", "ls", "--admin", adminAddr); code != 1 || !strings.Contains(errs, "401 Unauthorized") {
		t.Errorf("edge ls without the token: %d, want 1 and the relay's 401\n%s%s", code, out, errs)
	}
	bak := filepath.Join(dir, "online.bak")
	if code, out, errs := cli("backup", "--config", conf, bak); code != 0 || !strings.Contains(errs, "taking an online backup") {
		t.Errorf("online backup with the token: %d\n%s%s", code, out, errs)
	}
	// A token file the CLI cannot use: a clear error, nothing sent.
	if err := os.WriteFile(filepath.Join(dir, "bad.token"), []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(y, cfg.Admin.TokenFile, filepath.Join(dir, "bad.token"), 1)
	if err := os.WriteFile(conf, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli("edge", "ls", "--config", conf); code != 1 || !strings.Contains(errs, "admin token") {
		t.Errorf("edge ls with a corrupt token file: %d, want 1 and an admin token error\n%s", code, errs)
	}
}
