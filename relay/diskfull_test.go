package relay_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/relaytest"
)

// TestDiskFull runs a relay whose disk becomes full (storage.min_free_space raised past the
// disk's size by a config reload) and comes back (auto again): while full, /system/status
// answers 503 saying why, a PUT gets 507, AttestNode ResourceExhausted, and stored files,
// /metrics and the admin status are still served; afterwards writes work again, without a
// restart.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	root := relaytest.NewNode("root", "root", 0)
	src := relaytest.NewNode("src", "root", 1)
	tgt := relaytest.NewNode("tgt", "root", 2)
	cfg := relaytest.Config(t, dir, "root", relaytest.NodeMap(root, src, tgt))
	path := filepath.Join(dir, "relay.yaml")
	writeConfig := func(minFree config.AutoByteSize) {
		t.Helper()
		c := *cfg
		c.Storage.MinFreeSpace = minFree
		b, err := c.YAML()
		if err != nil {
			t.Fatal(err)
		}
		relaytest.WriteFileAtomic(t, path, b)
	}
	writeConfig(config.Auto)
	loaded, err := config.Load(path, true)
	if err != nil {
		t.Fatal(err)
	}
	var logs relaytest.SyncBuffer
	srv, err := relay.New(loaded, relay.Options{ConfigPath: path, ConfigExplicit: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Build: relay.Build{Version: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	api, admin := "http://"+srv.APIAddr().String(), "http://"+srv.AdminAddr().String()
	statusOf := func() (int, httpapi.Status) {
		t.Helper()
		code, body := relaytest.Do(t, http.MethodGet, api+"/rudder/relay-api/1/system/status", nil)
		st, err := httpapi.DecodeStatus([]byte(body))
		if err != nil {
			t.Fatalf("status: %v in %s", err, body)
		}
		return code, st
	}
	filePath := func(id string) string { return api + "/rudder/relay-api/1/shared-files/tgt/src/" + id }
	content := []byte("stored before the disk filled up")
	if code, body := relaytest.Do(t, http.MethodPut, filePath("kept"), relaytest.SignedBody(t, src, content, "1d")); code != http.StatusOK {
		t.Fatalf("PUT with room: %d %s", code, body)
	}
	if code, st := statusOf(); code != http.StatusOK || st.Status != "ok" || st.Disk == nil || st.Disk.Full || st.Disk.FreeBytes <= 0 {
		t.Fatalf("status with room: %d %+v %+v", code, st, st.Disk)
	}

	writeConfig(config.AutoByteSize(1 << 62))
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	code, st := statusOf()
	if code != http.StatusServiceUnavailable || st.Status != "disk_full" || !strings.HasPrefix(st.StatusReason, "disk full: ") ||
		st.Disk == nil || !st.Disk.Full || st.Disk.NeedBytes < 1<<62 {
		t.Fatalf("status on a full disk: %d %+v %+v", code, st, st.Disk)
	}
	if strings.Contains(st.StatusReason, dir) {
		t.Errorf("the reason names the data directory: %q", st.StatusReason)
	}
	if code, body := relaytest.Do(t, http.MethodPut, filePath("refused"), relaytest.SignedBody(t, src, []byte("x"), "1d")); code != http.StatusInsufficientStorage || !strings.Contains(body, "disk is full") {
		t.Errorf("PUT on a full disk: %d %q, want 507 saying the disk is full", code, body)
	}
	if code, _ := relaytest.Do(t, http.MethodHead, filePath("kept")+"?hash="+sha256hex(content), nil); code != http.StatusOK {
		t.Errorf("HEAD of a stored file on a full disk: %d", code)
	}
	got := do(t, http.MethodGet, filePath("kept"), nil, signedBy(t, tgt.ID, tgt.Key, time.Now()))
	if got.code != http.StatusOK || !bytes.Equal(got.body, content) {
		t.Errorf("GET of a stored file on a full disk: %d %q", got.code, got.body)
	}
	if code, body := relaytest.Do(t, http.MethodGet, admin+"/metrics", nil); code != http.StatusOK || !strings.Contains(body, "keel_shared_files_stored 1") {
		t.Errorf("metrics on a full disk: %d", code)
	}
	if code, body := relaytest.Do(t, http.MethodGet, admin+"/status", nil); code != http.StatusServiceUnavailable || !strings.Contains(body, `"disk_full"`) {
		t.Errorf("admin status on a full disk: %d %s", code, body)
	}
	conn, err := grpc.NewClient("passthrough:///"+srv.EdgeAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	_, err = edgepb.NewNodeClusterServiceClient(conn).AttestNode(ctx, &edgepb.AttestNodeRequest{
		NodeId: uuid.NewString(), Role: edgepb.NodeRole_NODE_ROLE_EDGE, PublicKey: pub})
	if grpcstatus.Code(err) != codes.ResourceExhausted || !strings.Contains(grpcstatus.Convert(err).Message(), "disk is full") {
		t.Errorf("AttestNode on a full disk: %v, want ResourceExhausted saying the disk is full", err)
	}
	if !strings.Contains(logs.String(), "disk full") {
		t.Errorf("the log does not say the disk is full:\n%s", logs.String())
	}

	writeConfig(config.Auto)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if code, st := statusOf(); code != http.StatusOK || st.Status != "ok" || st.Disk.Full {
		t.Fatalf("status once space is back: %d %+v %+v", code, st, st.Disk)
	}
	if code, body := relaytest.Do(t, http.MethodPut, filePath("after"), relaytest.SignedBody(t, src, []byte("y"), "1d")); code != http.StatusOK {
		t.Errorf("PUT once space is back: %d %s", code, body)
	}
}
