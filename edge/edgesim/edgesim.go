// Package edgesim is a small, real edge daemon for tests and benchmarks: it enrolls through
// AttestNode and ChallengeNode with a fresh Ed25519 key, opens a ConnectEdge stream with a
// sealed Hello, heartbeats, and answers InvokeTool with a handler the caller supplies, every
// event sealed with internal/wire/envelope. Unlike keel-agent it keeps nothing on disk, so one
// process can play thousands of daemons.
package edgesim

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
	"github.com/keel-relay/keel/internal/wire/envelope"
)

// Identity is an enrolled daemon: its node id, key and node security token.
type Identity struct {
	NodeID string
	Key    ed25519.PrivateKey

	mu    sync.Mutex
	token string
}

// NewIdentity returns a daemon with a random UUID node id and a fresh key, not enrolled.
func NewIdentity() (*Identity, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("edgesim: generate key: %w", err)
	}
	return &Identity{NodeID: uuid.NewString(), Key: key}, nil
}

// Token returns the daemon's current node security token ("" before Enroll).
func (id *Identity) Token() string {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.token
}

// SetToken replaces the daemon's node security token.
func (id *Identity) SetToken(t string) {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.token = t
}

// Attest asks the relay for a challenge for the daemon's key. A non-empty bearer (an
// enrollment token, or the daemon's current node security token) goes as the call's
// authorization metadata, which puts the challenge in the relay's reserved pool.
func (id *Identity) Attest(ctx context.Context, c edgepb.NodeClusterServiceClient, bearer string, caps *edgepb.EdgeCapabilities) (*edgepb.AttestNodeResponse, error) {
	if bearer != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, edgetoken.AuthorizationKey, edgetoken.Bearer(bearer))
	}
	ar, err := c.AttestNode(ctx, &edgepb.AttestNodeRequest{
		NodeId: id.NodeID, Role: edgepb.NodeRole_NODE_ROLE_EDGE,
		PublicKey: id.Key.Public().(ed25519.PublicKey), Capabilities: caps,
	})
	if err != nil {
		return nil, fmt.Errorf("edgesim: attest %s: %w", id.NodeID, err)
	}
	return ar, nil
}

// Enroll attests the daemon's key and answers the challenge with enrollToken (empty: a
// token refresh of an enrolled daemon), keeping the node security token it gets. The
// attestation carries enrollToken, or for a refresh the daemon's current token, as its
// authorization.
func (id *Identity) Enroll(ctx context.Context, c edgepb.NodeClusterServiceClient, enrollToken string, caps *edgepb.EdgeCapabilities) error {
	bearer := enrollToken
	if bearer == "" {
		bearer = id.Token()
	}
	ar, err := id.Attest(ctx, c, bearer, caps)
	if err != nil {
		return err
	}
	req := &edgepb.ChallengeNodeRequest{
		ChallengeId: ar.GetChallengeId(), NodeId: id.NodeID,
		ChallengeSignature: ed25519.Sign(id.Key, ar.GetChallengeNonce()),
	}
	if enrollToken != "" {
		req.BootstrapProof = &edgepb.ChallengeNodeRequest_EnrollmentToken{EnrollmentToken: enrollToken}
	}
	cr, err := c.ChallengeNode(ctx, req)
	if err != nil {
		return fmt.Errorf("edgesim: challenge %s: %w", id.NodeID, err)
	}
	id.SetToken(cr.GetNodeSecurityToken())
	return nil
}

// DialFrom returns a plaintext client connection to target (host:port) whose TCP
// connections leave from the local address source, so that one test process can play
// callers from many addresses (on Linux every 127.0.0.0/8 address is the loopback's).
func DialFrom(target string, source netip.Addr, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	local := &net.TCPAddr{IP: source.AsSlice()}
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: local}
		return d.DialContext(ctx, "tcp", addr)
	}
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(dialer)}, opts...)
	conn, err := grpc.NewClient("passthrough:///"+target, opts...)
	if err != nil {
		return nil, fmt.Errorf("edgesim: dial %s from %s: %w", target, source, err)
	}
	return conn, nil
}

// Handler answers one InvokeTool. progress sends an output chunk to the relay (it may block
// while the stream's send queue is full). ctx ends when the relay sends Cancel for the
// command (its cause is then an error carrying the reason) or the stream ends.
type Handler func(ctx context.Context, inv *edgepb.InvokeTool, progress func(*edgepb.Chunk)) *edgepb.EdgeResult

// Echo is the default handler: it answers Ok with exit code 0 at once, without output.
func Echo(context.Context, *edgepb.InvokeTool, func(*edgepb.Chunk)) *edgepb.EdgeResult {
	return &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Ok_{Ok: &edgepb.EdgeResult_Ok{Duration: durationpb.New(0)}}}
}

// ErrCancelled is the cause of a handler's context when the relay cancelled the command.
var ErrCancelled = errors.New("edgesim: cancelled by the relay")

// Options tune a stream; zero values take defaults.
type Options struct {
	// Capabilities are sent in the Hello.
	Capabilities *edgepb.EdgeCapabilities
	// Handler answers InvokeTool (default Echo).
	Handler Handler
	// Heartbeat is the heartbeat interval (0: none).
	Heartbeat time.Duration
	// OnCommand, when set, sees every command received, before it is acted on.
	OnCommand func(*edgepb.EdgeCommand)
	// Connected, when set, is called once the Hello has been sent.
	Connected func()
	// MaxRunning bounds the commands run at once on the stream (default 64); more wait.
	MaxRunning int
}

// stream is one open ConnectEdge stream.
type stream struct {
	id       *Identity
	streamID string
	out      chan *edgepb.EdgeEvent
	mu       sync.Mutex
	running  map[string]context.CancelCauseFunc
}

// Run opens a ConnectEdge stream, says Hello and serves it until ctx ends or the relay
// ends the stream; it returns the stream's end (nil when ctx ended it).
func (id *Identity) Run(ctx context.Context, c edgepb.NodeClusterServiceClient, opts Options, callOpts ...grpc.CallOption) error {
	if opts.Handler == nil {
		opts.Handler = Echo
	}
	if opts.MaxRunning <= 0 {
		opts.MaxRunning = 64
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	mdctx := metadata.AppendToOutgoingContext(sctx, edgetoken.AuthorizationKey, edgetoken.Bearer(id.Token()))
	cs, err := c.ConnectEdge(mdctx, callOpts...)
	if err != nil {
		return fmt.Errorf("edgesim: connect %s: %w", id.NodeID, err)
	}
	s := &stream{id: id, streamID: uuid.NewString(), out: make(chan *edgepb.EdgeEvent, 64), running: map[string]context.CancelCauseFunc{}}
	hello := &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_Hello{Hello: &edgepb.Hello{Capabilities: opts.Capabilities, StreamId: s.streamID}}}
	if err := s.send(cs, hello); err != nil {
		return endErr(ctx, fmt.Errorf("edgesim: hello %s: %w", id.NodeID, err))
	}
	if opts.Connected != nil {
		opts.Connected()
	}

	var wg sync.WaitGroup
	sendErr := make(chan error, 1)
	wg.Go(func() { // the single writer
		var tick <-chan time.Time
		if opts.Heartbeat > 0 {
			t := time.NewTicker(opts.Heartbeat)
			defer t.Stop()
			tick = t.C
		}
		for {
			var ev *edgepb.EdgeEvent
			select {
			case <-sctx.Done():
				return
			case ev = <-s.out:
			case <-tick:
				ev = &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_Heartbeat{Heartbeat: &edgepb.Heartbeat{SentAt: timestamppb.Now()}}}
			}
			if err := s.send(cs, ev); err != nil {
				sendErr <- err
				if !errors.Is(err, io.EOF) { // io.EOF: the stream broke; Recv returns why
					cancel()
				}
				return
			}
		}
	})
	slots := make(chan struct{}, opts.MaxRunning)
	var runs sync.WaitGroup
	var recvErr error
	for {
		cmd, err := cs.Recv()
		if err != nil {
			recvErr = err
			break
		}
		if opts.OnCommand != nil {
			opts.OnCommand(cmd)
		}
		switch c := cmd.GetCommand().(type) {
		case *edgepb.EdgeCommand_InvokeTool:
			inv := c.InvokeTool
			select {
			case slots <- struct{}{}:
			case <-sctx.Done():
			}
			if sctx.Err() != nil {
				break
			}
			rctx, rcancel := context.WithCancelCause(sctx)
			s.mu.Lock()
			s.running[inv.GetCommandId()] = rcancel
			s.mu.Unlock()
			runs.Go(func() {
				defer func() { <-slots }()
				defer rcancel(nil)
				res := opts.Handler(rctx, inv, func(ch *edgepb.Chunk) {
					s.queue(sctx, &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandProgress{CommandProgress: &edgepb.CommandProgress{CommandId: inv.GetCommandId(), Chunk: ch}}})
				})
				s.mu.Lock()
				delete(s.running, inv.GetCommandId())
				s.mu.Unlock()
				s.queue(sctx, &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandResult{CommandResult: &edgepb.CommandResult{CommandId: inv.GetCommandId(), Result: res}}})
			})
		case *edgepb.EdgeCommand_Cancel:
			s.mu.Lock()
			if rc, ok := s.running[c.Cancel.GetCommandId()]; ok {
				rc(fmt.Errorf("%w: %s", ErrCancelled, c.Cancel.GetReason()))
			}
			s.mu.Unlock()
		}
	}
	cancel()
	runs.Wait()
	wg.Wait()
	select {
	case err := <-sendErr:
		if recvErr == nil || (!errors.Is(err, io.EOF) && status.Code(recvErr) == codes.Canceled) {
			recvErr = err // the receive was cut by our own cancel
		}
	default:
	}
	return endErr(ctx, recvErr)
}

// queue hands an event to the writer, or drops it when the stream is over.
func (s *stream) queue(ctx context.Context, ev *edgepb.EdgeEvent) {
	select {
	case s.out <- ev:
	case <-ctx.Done():
	}
}

func (s *stream) send(cs edgepb.NodeClusterService_ConnectEdgeClient, ev *edgepb.EdgeEvent) error {
	if err := envelope.Seal(s.id.Key, s.id.Token(), s.id.NodeID, s.streamID, time.Now(), ev); err != nil {
		return err
	}
	return cs.Send(ev)
}

// endErr is nil when the caller's ctx ended the stream, else err.
func endErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
