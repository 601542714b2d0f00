package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keel-relay/keel/edge/dispatch"
	"github.com/keel-relay/keel/edge/edgesim"
	"github.com/keel-relay/keel/edge/keys"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
	"github.com/keel-relay/keel/internal/wire/envelope"
	"github.com/keel-relay/keel/storage"
)

// harness is a real edge server on 127.0.0.1:0 over a real store, with a gRPC client.
type harness struct {
	t      testing.TB
	srv    *Server
	store  *storage.Store
	reg    *metrics.Registry
	key    ed25519.PrivateKey
	conn   *grpc.ClientConn
	client edgepb.NodeClusterServiceClient
	served chan error
	stop   sync.Once
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("EDGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testOptions() Options {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	return Options{
		Listen: "127.0.0.1:0", Role: "relay_coordinator",
		HeartbeatInterval: 30 * time.Second, StaleThreshold: 90 * time.Second,
		TokenTTL: time.Hour, OverlapWindow: time.Minute, AttestPerMinute: 1000,
		MaxPendingChallenges: 1024, HelloTimeout: 2 * time.Second, StreamQueue: 16,
		FlushInterval: time.Hour, DrainGrace: 2 * time.Second, MaxStreams: 100,
		SigningKey: key, Issuer: keys.Issuer("root"),
	}
}

func newHarness(t testing.TB, mod func(*Options)) *harness {
	t.Helper()
	opts := testOptions()
	if mod != nil {
		mod(&opts)
	}
	log := testLogger(t)
	store, err := storage.Open(storage.DefaultOptions(t.TempDir()), log)
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.NewRegistry()
	srv, err := New(opts, store, reg, log)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	h := &harness{t: t, srv: srv, store: store, reg: reg, key: opts.SigningKey, served: make(chan error, 1)}
	go func() { h.served <- srv.Serve() }()
	h.conn, err = grpc.NewClient("passthrough:///"+srv.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h.client = edgepb.NewNodeClusterServiceClient(h.conn)
	t.Cleanup(h.close)
	return h
}

// close shuts the server down (once) and closes the store.
func (h *harness) close() {
	h.stop.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.srv.Shutdown(ctx)
		select {
		case err := <-h.served:
			if err != nil {
				h.t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			h.t.Error("Serve did not return")
		}
		h.conn.Close()
		if err := h.store.Close(); err != nil {
			h.t.Errorf("close store: %v", err)
		}
	})
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// clientFrom returns a client whose connections leave from the loopback address src
// (127.0.0.0/8: any of them works on Linux), so that a test plays callers from many
// sources and networks.
func (h *harness) clientFrom(src string) edgepb.NodeClusterServiceClient {
	h.t.Helper()
	conn, err := edgesim.DialFrom(h.srv.Addr().String(), netip.MustParseAddr(src))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { conn.Close() })
	return edgepb.NewNodeClusterServiceClient(conn)
}

// metrics returns the server's metrics in the text exposition format.
func (h *harness) metrics() string {
	var b strings.Builder
	if err := h.reg.WriteText(&b); err != nil {
		h.t.Fatal(err)
	}
	return b.String()
}

// enrollToken signs an enrollment token of the relay.
func (h *harness) enrollToken(tenant string, ttl time.Duration) string {
	tok, _, err := EnrollmentToken(h.key, h.srv.Issuer(), tenant, "label-"+tenant, ttl, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// daemon is a test edge daemon: a node id, a key and its token.
type daemon struct {
	h      *harness
	id     string
	key    ed25519.PrivateKey
	token  string
	tenant string
}

func newDaemon(h *harness) *daemon {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	return &daemon{h: h, id: uuid.NewString(), key: key, tenant: "acme"}
}

func (d *daemon) pub() ed25519.PublicKey { return d.key.Public().(ed25519.PublicKey) }

// attest runs AttestNode and signs the nonce.
func (d *daemon) attest(ctx context.Context) (*edgepb.AttestNodeResponse, []byte, error) {
	return d.attestWith(ctx, d.h.client, "")
}

// attestWith runs AttestNode through client, with bearer (when not empty) as the call's
// authorization, and signs the nonce.
func (d *daemon) attestWith(ctx context.Context, client edgepb.NodeClusterServiceClient, bearer string) (*edgepb.AttestNodeResponse, []byte, error) {
	if bearer != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, edgetoken.AuthorizationKey, edgetoken.Bearer(bearer))
	}
	a, err := client.AttestNode(ctx, &edgepb.AttestNodeRequest{
		NodeId: d.id, Role: edgepb.NodeRole_NODE_ROLE_EDGE, PublicKey: d.pub(),
		Capabilities: &edgepb.EdgeCapabilities{Os: "linux", Arch: "amd64", LocalTools: []string{"agent-run"}},
	})
	if err != nil {
		return nil, nil, err
	}
	return a, ed25519.Sign(d.key, a.ChallengeNonce), nil
}

// enrollWith attests and answers the challenge with the enrollment token tok.
func (d *daemon) enrollWith(ctx context.Context, tok string) error {
	a, sig, err := d.attest(ctx)
	if err != nil {
		return err
	}
	req := &edgepb.ChallengeNodeRequest{ChallengeId: a.ChallengeId, NodeId: d.id, ChallengeSignature: sig}
	if tok != "" {
		req.BootstrapProof = &edgepb.ChallengeNodeRequest_EnrollmentToken{EnrollmentToken: tok}
	}
	resp, err := d.h.client.ChallengeNode(ctx, req)
	if err != nil {
		return err
	}
	d.token = resp.NodeSecurityToken
	return nil
}

func enrolled(t *testing.T, h *harness) *daemon {
	t.Helper()
	d := newDaemon(h)
	if err := d.enrollWith(ctxT(t), h.enrollToken(d.tenant, 15*time.Minute)); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	return d
}

// stream is a test daemon's ConnectEdge stream.
type stream struct {
	d      *daemon
	s      grpc.BidiStreamingClient[edgepb.EdgeEvent, edgepb.EdgeCommand]
	id     string
	cancel context.CancelFunc
}

// open opens ConnectEdge with the bearer token (no Hello yet).
func (d *daemon) open(t *testing.T, bearer string) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if bearer != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, edgetoken.AuthorizationKey, edgetoken.Bearer(bearer))
	}
	s, err := d.h.client.ConnectEdge(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	st := &stream{d: d, s: s, id: uuid.NewString(), cancel: cancel}
	t.Cleanup(cancel)
	return st
}

// connect opens a stream and sends a valid Hello, and waits until it is registered.
func (d *daemon) connect(t *testing.T) *stream {
	t.Helper()
	st := d.open(t, d.token)
	if err := st.hello(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		s, ok := d.h.srv.reg.Get(d.id)
		return ok && s.StreamID == st.id
	})
	return st
}

func helloEvent(streamID string) *edgepb.EdgeEvent {
	return &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_Hello{Hello: &edgepb.Hello{
		StreamId: streamID, Capabilities: &edgepb.EdgeCapabilities{Os: "linux", Arch: "arm64", LocalTools: []string{"agent-run"}, CustomLabels: map[string]string{"site": "paris"}},
	}}}
}

func heartbeatEvent() *edgepb.EdgeEvent {
	return &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_Heartbeat{Heartbeat: &edgepb.Heartbeat{SentAt: timestamppb.Now()}}}
}

// sealed seals ev with the daemon's key and token, its node id and the stream id, now.
func (st *stream) sealed(ev *edgepb.EdgeEvent) *edgepb.EdgeEvent {
	if err := envelope.Seal(st.d.key, st.d.token, st.d.id, st.id, time.Now(), ev); err != nil {
		st.d.h.t.Fatal(err)
	}
	return ev
}

func (st *stream) hello() error { return st.s.Send(st.sealed(helloEvent(st.id))) }

func (st *stream) heartbeat() error { return st.s.Send(st.sealed(heartbeatEvent())) }

// endCode waits for the stream to end and returns its status code.
func (st *stream) endCode(t *testing.T) codes.Code {
	t.Helper()
	for {
		_, err := st.s.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return codes.OK
			}
			return status.Code(err)
		}
	}
}

// nextCommand returns the next command sent to the daemon.
func (st *stream) nextCommand(t *testing.T) *edgepb.EdgeCommand {
	t.Helper()
	cmd, err := st.s.Recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return cmd
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("code = %s (%v), want %s", got, err, want)
	}
}

func codeOf(err error) codes.Code { return status.Code(err) }

type fleetEvent = dispatch.FleetEvent
