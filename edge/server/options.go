package server

import (
	"crypto/ed25519"
	"path/filepath"
	"time"

	"github.com/keel-relay/keel/edge/keys"
	"github.com/keel-relay/keel/internal/membudget"
)

// Defaults of the settings the config file does not carry.
const (
	// DefaultClockSkew is how far an envelope timestamp may be from the relay clock.
	DefaultClockSkew = 120 * time.Second
	// DefaultChallengeTTL is how long an attestation challenge waits for its answer.
	DefaultChallengeTTL = 300 * time.Second
	// DefaultEnrollmentLeeway is the clock skew tolerated on enrollment tokens from
	// upstream issuers.
	DefaultEnrollmentLeeway = 30 * time.Second
	// DefaultMaxMessageSize bounds a received gRPC message.
	DefaultMaxMessageSize = 4 << 20
	// DefaultAgentRunTimeout is the deadline of an agent run over a stream when the caller
	// sets none.
	DefaultAgentRunTimeout = 5 * time.Minute
	// AgentRunTool is the tool that runs the node's agent (argument "classes").
	AgentRunTool = "agent-run"
	// DefaultReservedChallenges is the pool of pending challenges kept for callers with a
	// valid enrollment or node token (edge.reserved_challenges).
	DefaultReservedChallenges = 256
	// DefaultChallengesPerSource bounds the pending anonymous challenges of one source
	// address (an IPv6 /64) (edge.challenges_per_source).
	DefaultChallengesPerSource = 8
	// DefaultChallengesPerNetwork bounds the pending anonymous challenges of one IPv4 /24
	// or IPv6 /48 (edge.challenges_per_network).
	DefaultChallengesPerNetwork = 32
	// DefaultChallengesPerToken bounds the pending challenges of one token in the reserved
	// pool.
	DefaultChallengesPerToken = 2
)

// Options configure a Server. The daemon's assembly (package relay) fills them from its
// configuration.
type Options struct {
	Listen                  string
	TLSCertFile, TLSKeyFile string
	// Role is the relay's edge.role, shown in logs; Worker (role "worker") refuses the edge
	// RPCs with FailedPrecondition and serves only the health service.
	Role              string
	Worker            bool
	HeartbeatInterval time.Duration
	StaleThreshold    time.Duration
	TokenTTL          time.Duration
	OverlapWindow     time.Duration
	AttestPerMinute   int
	// MaxPendingChallenges bounds the anonymous pool of pending challenges, in which one
	// source holds at most ChallengesPerSource and one network ChallengesPerNetwork;
	// ReservedChallenges is the pool of callers with a valid token (package quota).
	MaxPendingChallenges int
	ReservedChallenges   int
	ChallengesPerSource  int
	ChallengesPerNetwork int
	HelloTimeout         time.Duration
	StreamQueue          int
	FlushInterval        time.Duration
	DrainGrace           time.Duration
	MaxStreams           int
	// MaxConnections bounds the open connections of the edge listener: at the cap no new
	// connection is accepted (it waits in the kernel's accept queue) until one closes.
	// 0: no bound.
	MaxConnections int
	// MaxConnectionIdle closes a connection that held no stream for this long (default
	// 2 × HelloTimeout): a live daemon always holds its ConnectEdge stream, and an enrolling
	// one opens it right after its attestation, so a longer idle connection is a daemon
	// backing off after a refusal, or gone; its place under MaxConnections is given back.
	MaxConnectionIdle time.Duration
	// Reflection serves the gRPC server reflection API (v1 and v1alpha) on the listener, so
	// that grpcurl and the like can list and describe its services (edge.reflection).
	Reflection bool

	// SigningKey signs node security tokens (and this relay's enrollment tokens); Issuer is
	// their iss (keys.Issuer of the relay's node id).
	SigningKey ed25519.PrivateKey
	Issuer     string
	// TrustedIssuers are the upstream enrollment-token issuers and their keys.
	TrustedIssuers map[string]ed25519.PublicKey

	// Zero values below take the Default* constants.
	ClockSkew        time.Duration
	ChallengeTTL     time.Duration
	EnrollmentLeeway time.Duration
	MaxMessageSize   int
	AgentRunTimeout  time.Duration
	// ChallengesPerToken bounds the pending challenges of one token in the reserved pool.
	ChallengesPerToken int
	// ReconnectGrace is how long the commands of a node whose stream closed wait for it to
	// reconnect (default 2 × HelloTimeout).
	ReconnectGrace time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Pressure, when not nil, refuses new ConnectEdge streams with ResourceExhausted while
	// the process is near its memory budget (a node's replacement stream is still taken).
	Pressure membudget.Pressure
}

// SigningKeyPath is where the relay's edge signing key lives in its data directory.
func SigningKeyPath(dataDir string) string { return filepath.Join(dataDir, keys.FileName) }

func (o *Options) defaults() {
	if o.ClockSkew <= 0 {
		o.ClockSkew = DefaultClockSkew
	}
	if o.ChallengeTTL <= 0 {
		o.ChallengeTTL = DefaultChallengeTTL
	}
	if o.EnrollmentLeeway <= 0 {
		o.EnrollmentLeeway = DefaultEnrollmentLeeway
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.AgentRunTimeout <= 0 {
		o.AgentRunTimeout = DefaultAgentRunTimeout
	}
	if o.ReservedChallenges <= 0 {
		o.ReservedChallenges = DefaultReservedChallenges
	}
	if o.ChallengesPerSource <= 0 {
		o.ChallengesPerSource = DefaultChallengesPerSource
	}
	if o.ChallengesPerNetwork <= 0 {
		o.ChallengesPerNetwork = DefaultChallengesPerNetwork
	}
	if o.ChallengesPerToken <= 0 {
		o.ChallengesPerToken = DefaultChallengesPerToken
	}
	if o.ReconnectGrace <= 0 {
		o.ReconnectGrace = 2 * o.HelloTimeout
	}
	if o.MaxConnectionIdle <= 0 {
		o.MaxConnectionIdle = 2 * o.HelloTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}
