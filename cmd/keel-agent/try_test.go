//go:build unix

package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// TestTrySetup: the README's "Try it" works as written: tools/try-setup (make try) writes keys,
// a node map pinning them and configs with which the real relay starts and the real agent of
// node1 shares a file that node2 fetches, byte for byte; a rerun keeps the keys. Only the
// listen addresses differ (the environment overrides them: a test must not take 3030).
func TestTrySetup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keel-try")
	if out, err := exec.Command("../../tools/try-setup", dir).CombinedOutput(); err != nil {
		t.Fatalf("tools/try-setup: %v\n%s", err, out)
	}
	api := relaytest.FreeAddr(t)
	relay := exec.Command(relayBin, "run", "--config", filepath.Join(dir, "relay.yaml"))
	relay.Env = append(cleanEnv(), "KEEL_HTTP_LISTEN="+api, "KEEL_ADMIN_LISTEN=127.0.0.1:0", "KEEL_EDGE_LISTEN=127.0.0.1:0")
	logs := &relaytest.SyncBuffer{}
	relay.Stdout, relay.Stderr = logs, logs
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = relay.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = relay.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = relay.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("--- keel-relay output ---\n%s", logs.String())
		}
	})
	waitStatus(t, "http://"+api)

	agent := func(args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, agentBin, args...)
		cmd.Env = append(cleanEnv(), "KEEL_AGENT_RELAY_URL=http://"+api)
		out, err := cmd.CombinedOutput()
		if err != nil && cmd.ProcessState == nil {
			t.Fatalf("keel-agent %s: %v", strings.Join(args, " "), err)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	content := []byte("hello\n")
	file := filepath.Join(t.TempDir(), "hello.txt")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	node1, node2 := filepath.Join(dir, "node1.yaml"), filepath.Join(dir, "node2.yaml")
	if code, out := agent("share", "--config", node1, "--to", "node2", "--id", "hello", file); code != 0 {
		t.Fatalf("share: exit %d: %s", code, out)
	}
	if code, out := agent("has", "--config", node1, "--to", "node2", "--id", "hello", file); code != 0 {
		t.Fatalf("has: exit %d: %s", code, out)
	}
	copyFile := filepath.Join(t.TempDir(), "copy.txt")
	if code, out := agent("fetch", "--config", node2, "--from", "node1", "--id", "hello", copyFile); code != 0 {
		t.Fatalf("fetch: exit %d: %s", code, out)
	}
	if got, err := os.ReadFile(copyFile); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("fetched %q, %v; want %q", got, err, content)
	}

	// Rerun: the keys stay (the node map still pins them).
	before, err := os.ReadFile(filepath.Join(dir, "node1.priv"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("../../tools/try-setup", dir).CombinedOutput(); err != nil {
		t.Fatalf("tools/try-setup again: %v\n%s", err, out)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "node1.priv")); !bytes.Equal(before, after) {
		t.Error("a second try-setup replaced node1's key")
	}
}

// waitStatus waits until the relay API at base answers 200 on /system/status.
func waitStatus(t *testing.T, base string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := client.Get(base + "/rudder/relay-api/1/system/status"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("relay not ready")
}
