// Package server is the relay's edge gRPC API: the NodeClusterService (AttestNode,
// ChallengeNode, ConnectEdge, RotateEdgeKey) and the standard grpc.health.v1 service on
// edge.listen, with the operator-side methods the admin API and CLI use (list daemons, tag,
// revoke, invoke on one node or a fleet, cancel, drain) and the remote-run EdgeRunner.
//
// Durable state (daemon rows, keys, redeemed jtis, blacklisted tokens, challenges) is in
// the store; live streams, last-seen times and pending commands are in memory, last-seen
// times being flushed to the store every flush_interval and at stop.
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/keel-relay/keel/edge/dispatch"
	"github.com/keel-relay/keel/edge/quota"
	"github.com/keel-relay/keel/edge/ratelimit"
	"github.com/keel-relay/keel/edge/registry"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
	"github.com/keel-relay/keel/storage"
)

// Per-connection gRPC settings.
const (
	// connBuffer is the read and write buffer of a connection (gRPC's default: 32 KiB).
	connBuffer = 8 << 10
	// connWindow is the static flow-control window of a stream and of a connection: gRPC's
	// least, with BDP estimation (which grows windows up to 16 MiB) off.
	connWindow = 64 << 10
	// maxConnStreams bounds the concurrent streams of one connection. A daemon needs its
	// ConnectEdge stream and a few unary calls, but a TLS proxy in front of the listener
	// (edge.allow_plaintext) carries many daemons on one connection; the streams are bounded
	// by MaxStreams anyway, and the data in flight by the connection's window.
	maxConnStreams = 64
	// keepaliveTimeout is how long a keepalive ping waits for its answer (and the
	// connections' TCP_USER_TIMEOUT).
	keepaliveTimeout = 20 * time.Second
)

// ServiceName is the full name of the NodeClusterService (also its health service name).
const ServiceName = "aegis.cluster.v1.NodeClusterService"

// Server is the running edge API.
type Server struct {
	edgepb.UnimplementedNodeClusterServiceServer

	opts  Options
	log   *slog.Logger
	store *storage.Store
	now   func() time.Time
	m     *serverMetrics

	ln     *capListener
	grpc   *grpc.Server
	health *health.Server

	reg     *registry.Registry
	seen    *registry.Seen
	disp    *dispatch.Dispatcher
	limiter *ratelimit.Limiter // AttestNode per anonymous source
	// tokenLimiter limits AttestNode per token for callers with a valid token.
	tokenLimiter *ratelimit.Limiter
	// challenges counts the pending challenges in their pools and shares.
	challenges *quota.Ledger

	pub     ed25519.PublicKey
	kid     string
	nodeV   edgetoken.Validator
	enrollV edgetoken.Validator

	mu        sync.Mutex
	blacklist map[string]time.Time // token ids this process blacklisted -> until
	rotated   map[string]rotation  // token ids rotated out -> the rotation
	keys      map[string]*keyState // node -> cached key state
	caps      map[string][]byte    // capabilities not yet written

	// cert is the listener's key pair in force (edge.tls), nil without TLS; ReloadTLS
	// replaces it, and new handshakes use it.
	cert atomic.Pointer[tls.Certificate]

	draining  atomic.Bool
	stopFlush context.CancelFunc
	flushDone chan struct{}
	stopOnce  sync.Once
}

// rotation records that a token was rotated out: streams connected before it may keep
// using the token until the overlap window ends.
type rotation struct {
	node      string
	at, until time.Time
}

// ReloadTLS re-reads the listener's key pair (edge.tls.cert_file and key_file): new
// handshakes use the new pair, connections already open keep theirs. A pair that does not
// load leaves the one in force and is returned as the error. Without TLS it does nothing.
func (s *Server) ReloadTLS() error {
	if s.opts.TLSCertFile == "" {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(s.opts.TLSCertFile, s.opts.TLSKeyFile)
	if err != nil {
		return fmt.Errorf("edge.tls: %w", err)
	}
	s.cert.Store(&cert)
	return nil
}

// New binds edge.listen and builds the server; Serve serves it. store stays the caller's.
func New(opts Options, store *storage.Store, reg *metrics.Registry, log *slog.Logger) (*Server, error) {
	opts.defaults()
	if len(opts.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("edge: no signing key")
	}
	pub := opts.SigningKey.Public().(ed25519.PublicKey)
	s := &Server{
		opts: opts, log: log, store: store, now: opts.Now,
		reg:          registry.New(opts.MaxStreams, opts.StreamQueue),
		seen:         registry.NewSeen(),
		limiter:      ratelimit.New(opts.AttestPerMinute, time.Minute, 0),
		tokenLimiter: ratelimit.New(opts.AttestPerMinute, time.Minute, 0),
		challenges: quota.New(quota.Limits{
			Anonymous: opts.MaxPendingChallenges, PerSource: opts.ChallengesPerSource, PerNetwork: opts.ChallengesPerNetwork,
			Reserved: opts.ReservedChallenges, PerToken: opts.ChallengesPerToken, TTL: opts.ChallengeTTL,
		}),
		pub:       pub,
		kid:       edgetoken.Thumbprint(pub),
		blacklist: make(map[string]time.Time),
		rotated:   make(map[string]rotation),
		keys:      make(map[string]*keyState),
		caps:      make(map[string][]byte),
		flushDone: make(chan struct{}),
	}
	s.m = newServerMetrics(reg, s)
	s.disp = dispatch.New(s.reg, dispatch.Options{
		ReconnectGrace: opts.ReconnectGrace,
		Connected:      func(n string) bool { _, ok := s.reg.Get(n); return ok },
	}, dispatch.NewMetrics(reg), log.With("part", "dispatch"))
	s.nodeV = edgetoken.Validator{Keys: s.nodeKeys, Audience: edgetoken.AudienceNode, Now: s.now}
	s.enrollV = edgetoken.Validator{Keys: s.enrollmentKeys, Audience: edgetoken.AudienceEnrollment, Leeway: opts.EnrollmentLeeway, Now: s.now}

	sopts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(opts.MaxMessageSize),
		grpc.MaxSendMsgSize(opts.MaxMessageSize),
		grpc.MaxConcurrentStreams(maxConnStreams),
		// Small per-connection buffers and static flow-control windows (no BDP growth): a
		// connection costs little (BenchmarkIdleConnections), so that the budget holds
		// thousands. Edge messages are small; large ones are read in several syscalls.
		grpc.ReadBufferSize(connBuffer),
		grpc.WriteBufferSize(connBuffer),
		grpc.StaticStreamWindowSize(connWindow),
		grpc.StaticConnWindowSize(connWindow),
		// No HPACK dynamic table for what the daemons send: it would keep their bearer
		// token and other headers, per connection, for a saving of a few hundred bytes per call.
		grpc.HeaderTableSize(0),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    2 * opts.HeartbeatInterval, // ping an idle connection
			Timeout: keepaliveTimeout,
			// Close a connection that held no stream for this long, so that it gives its
			// place under MaxConnections back.
			MaxConnectionIdle: opts.MaxConnectionIdle,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             edgepb.MinKeepalive,
			PermitWithoutStream: true,
		}),
		grpc.ConnectionTimeout(opts.HelloTimeout),
		grpc.ChainUnaryInterceptor(s.unaryGate),
		grpc.ChainStreamInterceptor(s.streamGate),
	}
	if opts.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCertFile, opts.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("edge.tls: %w", err)
		}
		s.cert.Store(&cert)
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(&tls.Config{
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil },
			MinVersion:     tls.VersionTLS12,
		})))
	}
	s.grpc = grpc.NewServer(sopts...)
	edgepb.RegisterNodeClusterServiceServer(s.grpc, s)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(ServiceName, healthpb.HealthCheckResponse_SERVING)
	if opts.Reflection {
		reflection.Register(s.grpc)
	}

	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("edge.listen: %w", err)
	}
	s.ln = newCapListener(ln, opts.MaxConnections, keepaliveTimeout)
	s.restoreChallenges()
	return s, nil
}

// restoreChallenges counts again the challenges still pending in the store (issued before
// a restart), so that they keep their place in the pools until answered, evicted or expired.
// A store that cannot be listed is logged: the challenges it holds then go uncounted until
// they expire.
func (s *Server) restoreChallenges() {
	now := s.now()
	pending, skipped, err := s.store.Challenges(now)
	if err != nil {
		s.log.Error("pending challenges not counted", "err", err)
		return
	}
	if skipped > 0 {
		s.log.Warn("unreadable pending challenges left to expire", "count", skipped)
	}
	entries := make([]quota.Entry, 0, len(pending))
	for _, c := range pending {
		pool, ok := quota.ParsePool(c.Pool)
		if !ok {
			pool = quota.Anonymous
		}
		issued := c.Issued
		if issued.IsZero() {
			issued = c.Expires.Add(-s.opts.ChallengeTTL)
		}
		entries = append(entries, quota.Entry{ID: c.ID, Pool: pool, Source: c.SourceIP, Network: c.Network, Token: c.Quota, Issued: issued})
	}
	if n := s.challenges.Restore(entries, now); n > 0 {
		s.log.Info("pending challenges restored", "count", n)
	}
}

// Addr returns the address the edge API listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Issuer returns the iss of the tokens this relay signs.
func (s *Server) Issuer() string { return s.opts.Issuer }

// Serve serves until Shutdown (or Close); it returns nil then. The last-seen flusher runs
// while it serves.
func (s *Server) Serve() error {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.stopFlush = cancel
	s.mu.Unlock()
	go func() {
		defer close(s.flushDone)
		s.flushLoop(ctx)
	}()
	s.log.Info("edge API listening", "addr", s.ln.Addr().String(), "role", s.opts.Role, "tls", s.opts.TLSCertFile != "", "issuer", s.opts.Issuer,
		"max_streams", s.opts.MaxStreams, "max_connections", s.opts.MaxConnections, "connection_idle", s.opts.MaxConnectionIdle)
	err := s.grpc.Serve(s.ln)
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
}

// Close stops everything at once (used when the relay fails to start).
func (s *Server) Close() {
	s.grpc.Stop()
	_ = s.ln.Close()
	s.disp.Close()
	s.stopFlusher()
}

// errShutdown ends the streams still open when the relay stops.
var errShutdown = status.Error(codes.Unavailable, "relay shutting down")

// Shutdown stops gracefully: health goes NOT_SERVING and new streams and attestations are
// refused, every stream is sent Drain, commands in flight get up to drain_grace to finish,
// the streams are closed, gRPC stops gracefully (forcefully when ctx ends first), and the
// last-seen times and capabilities are flushed to the store.
func (s *Server) Shutdown(ctx context.Context) {
	s.stopOnce.Do(func() { s.shutdown(ctx) })
}

func (s *Server) shutdown(ctx context.Context) {
	s.draining.Store(true)
	s.health.Shutdown()
	streams := s.reg.Streams()
	for _, st := range streams {
		if err := s.disp.Drain(st.NodeID); err != nil {
			s.log.Debug("drain not sent", "node", st.NodeID, "err", err)
		}
	}
	pending := s.disp.Pending()
	s.log.Info("edge draining", "streams", len(streams), "commands", pending, "grace", s.opts.DrainGrace)
	if pending > 0 {
		gctx, cancel := context.WithTimeout(ctx, s.opts.DrainGrace)
		if err := s.disp.WaitIdle(gctx); err != nil {
			s.log.Warn("edge commands still running after the drain grace; cancelling them", "commands", s.disp.Pending())
		}
		cancel()
	}
	s.disp.Close()
	// Let the writers send what is queued (the Drains) before the streams close.
	wctx, cancel := context.WithTimeout(ctx, writerWait)
	for _, st := range streams {
		if !st.WaitWriter(wctx) {
			s.log.Warn("edge stream writers still busy at stop", "node", st.NodeID)
			break
		}
	}
	cancel()
	s.reg.CloseAll(errShutdown)
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("edge graceful stop cut short")
		s.grpc.Stop()
		<-done
	}
	s.stopFlusher()
	s.log.Info("edge stopped")
}

func (s *Server) stopFlusher() {
	s.mu.Lock()
	stop := s.stopFlush
	s.mu.Unlock()
	if stop != nil {
		stop()
		<-s.flushDone
	}
	s.flush() // the final flush
}

// Draining reports whether Shutdown has begun.
func (s *Server) Draining() bool { return s.draining.Load() }

// unaryGate and streamGate refuse the edge RPCs on a worker and while draining; the health
// service is always served.
func (s *Server) gate(method string) error {
	if !strings.HasPrefix(method, "/"+ServiceName+"/") {
		return nil
	}
	if s.opts.Worker {
		s.m.refused.With("role").Inc()
		return status.Error(codes.FailedPrecondition, "edge RPCs are not served by a relay with edge.role worker")
	}
	if s.draining.Load() {
		return errShutdown
	}
	return nil
}

func (s *Server) unaryGate(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.gate(info.FullMethod); err != nil {
		s.m.rpc(info.FullMethod, err)
		return nil, err
	}
	resp, err := handler(ctx, req)
	s.m.rpc(info.FullMethod, err)
	return resp, err
}

func (s *Server) streamGate(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.gate(info.FullMethod); err != nil {
		s.m.rpc(info.FullMethod, err)
		return err
	}
	err := handler(srv, ss)
	s.m.rpc(info.FullMethod, err)
	return err
}

// serverMetrics are the edge API's counters.
type serverMetrics struct {
	rpcs     *metrics.CounterVec // method, code
	refused  *metrics.CounterVec // reason
	messages *metrics.CounterVec // kind
	evicted  *metrics.CounterVec // share
	flushErr metrics.Counter
}

func newServerMetrics(reg *metrics.Registry, s *Server) *serverMetrics {
	reg.GaugeFunc("keel_edge_streams", "Live ConnectEdge streams.", func() float64 { return float64(s.reg.Len()) })
	reg.GaugeFunc("keel_edge_connections", "Open connections of the edge listener (at most edge_connections of the memory split).",
		func() float64 { return float64(s.ln.Open()) })
	reg.GaugeFunc("keel_edge_commands_pending", "Edge commands waiting for their result.", func() float64 { return float64(s.disp.Pending()) })
	reg.GaugeFunc("keel_edge_challenges_pending", "Attestation challenges of anonymous callers waiting for their answer.",
		func() float64 { return float64(s.challenges.Len(quota.Anonymous, s.now())) })
	reg.GaugeFunc("keel_edge_challenges_reserved_pending", "Attestation challenges of callers with a valid token waiting for their answer.",
		func() float64 { return float64(s.challenges.Len(quota.Reserved, s.now())) })
	return &serverMetrics{
		rpcs:    reg.Counter("keel_edge_rpcs_total", "Edge gRPC calls by method and status code.", "method", "code"),
		refused: reg.Counter("keel_edge_refusals_total", "Edge requests and stream messages refused, by reason.", "reason"),
		messages: reg.Counter("keel_edge_messages_total", "Verified stream messages from edge daemons, by kind.", "kind").
			Init([]string{"hello", "heartbeat", "command_result", "command_progress", "capability_update"}),
		evicted: reg.Counter("keel_edge_challenges_evicted_total",
			"Pending attestation challenges evicted to make room, by the share that was full (source, network, token, pool).", "share").
			Init([]string{"source", "network", "token", "pool"}),
		flushErr: reg.Counter("keel_edge_flush_errors_total", "Failed writes of last-seen times or capabilities.").With(),
	}
}

func (m *serverMetrics) rpc(method string, err error) {
	if i := strings.LastIndexByte(method, '/'); i >= 0 {
		method = method[i+1:]
	}
	m.rpcs.With(method, status.Code(err).String()).Inc()
}
