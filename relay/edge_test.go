package relay_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/keel-relay/keel/edge/keys"
	edgeserver "github.com/keel-relay/keel/edge/server"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/envelope"
	"github.com/keel-relay/keel/relay/relaytest"
)

// TestEdgeRemoteRun: the relay serves the edge API; a daemon enrolls with a token signed by
// the relay's key, connects, and a remote run for its node goes over its stream; at stop the
// stream gets Drain and health goes NOT_SERVING.
func TestEdgeRemoteRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodeID := uuid.NewString()
	node := relaytest.NewNode(nodeID, "root", 1)
	cfg := relaytest.Config(t, t.TempDir(), "root", relaytest.NodeMap(node))
	r := relaytest.Start(t, cfg)
	addr := r.EdgeAddr()
	if addr == nil || r.Edge() == nil {
		t.Fatal("edge API not started")
	}
	conn, err := grpc.NewClient("passthrough:///"+addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	if h, err := health.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", h, err)
	}

	// Enroll with a token made as `keel-relay edge enroll-token` does.
	relayKey, err := keys.Load(edgeserver.SigningKeyPath(cfg.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	enroll, _, err := edgeserver.EnrollmentToken(relayKey, keys.Issuer("root"), "acme", "n", time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	client := edgepb.NewNodeClusterServiceClient(conn)
	a, err := client.AttestNode(ctx, &edgepb.AttestNodeRequest{NodeId: nodeID, Role: edgepb.NodeRole_NODE_ROLE_EDGE, PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.ChallengeNode(ctx, &edgepb.ChallengeNodeRequest{
		ChallengeId: a.ChallengeId, NodeId: nodeID, ChallengeSignature: ed25519.Sign(key, a.ChallengeNonce),
		BootstrapProof: &edgepb.ChallengeNodeRequest_EnrollmentToken{EnrollmentToken: enroll},
	})
	if err != nil {
		t.Fatal(err)
	}
	token := c.NodeSecurityToken
	stream, err := client.ConnectEdge(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token))
	if err != nil {
		t.Fatal(err)
	}
	streamID := uuid.NewString()
	send := func(ev *edgepb.EdgeEvent) {
		t.Helper()
		if err := envelope.Seal(key, token, nodeID, streamID, time.Now(), ev); err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(ev); err != nil {
			t.Fatal(err)
		}
	}
	send(&edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_Hello{Hello: &edgepb.Hello{StreamId: streamID}}})
	deadline := time.Now().Add(10 * time.Second)
	for !r.Edge().Connected(nodeID) {
		if time.Now().After(deadline) {
			t.Fatal("stream not registered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := status(t, r); st.EdgeDaemons != 1 {
		t.Errorf("system/status edge_daemons_connected = %d with one live stream, want 1", st.EdgeDaemons)
	}

	// The daemon: runs agent-run, answers with two lines and exit code 0.
	drained := make(chan bool, 1)
	go func() {
		gotDrain := false
		defer func() { drained <- gotDrain }()
		for {
			cmd, err := stream.Recv()
			if err != nil {
				return
			}
			if cmd.GetDrain() != nil {
				gotDrain = true
			}
			inv := cmd.GetInvokeTool()
			if inv == nil {
				continue
			}
			classes := inv.GetArgs().GetFields()["classes"].GetListValue().GetValues()
			out := "agent run on " + nodeID + " with " + classes[0].GetStringValue() + "\ndone\n"
			send(&edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandProgress{CommandProgress: &edgepb.CommandProgress{CommandId: inv.CommandId, Chunk: &edgepb.Chunk{Kind: &edgepb.Chunk_Stdout{Stdout: []byte(out)}}}}})
			send(&edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandResult{CommandResult: &edgepb.CommandResult{CommandId: inv.CommandId, Result: &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Ok_{Ok: &edgepb.EdgeResult_Ok{}}}}}})
		}
	}()

	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.URL+"/rudder/relay-api/1/remote-run/nodes/"+nodeID, strings.NewReader("classes=c1&keep_output=true&asynchronous=false"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := nodeID + ":agent run on " + nodeID + " with c1\n" + nodeID + ":done\n"
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), want) || !strings.Contains(string(body), `"exit_code":0`) {
		t.Fatalf("remote run: %d\n%s\nwant prefix %q", resp.StatusCode, body, want)
	}

	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if !<-drained {
		t.Error("the stream got no Drain at stop")
	}
	if _, err := keys.Load(filepath.Join(cfg.DataDir, keys.FileName)); err != nil {
		t.Errorf("signing key: %v", err)
	}
}
