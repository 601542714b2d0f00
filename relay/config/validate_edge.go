package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/keel-relay/keel/internal/confload"
	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// Limits of the edge section.
const (
	MaxEdgeStreams     = 1_000_000
	MaxEdgeStreamQueue = 65536
	MinEdgeKeepalive   = edgepb.MinKeepalive // the listener refuses pings more often than this
)

// maxChallenges bounds each of the edge section's challenge counts.
const maxChallenges = 1_000_000

// check checks the edge section, one step per group of keys.
func (e *EdgeConfig) check(p *confload.Problems) {
	e.checkListener(p)
	e.checkTiming(p)
	e.checkChallenges(p)
	e.checkIssuers(p)
	e.checkStreams(p)
}

// checkListener checks edge.listen, edge.tls and edge.role.
func (e *EdgeConfig) checkListener(p *confload.Problems) {
	if err := checkListen(e.Listen); err != nil {
		p.Add("edge.listen", "%v", err)
	} else if e.Enabled && e.TLS.CertFile == "" && !e.AllowPlaintext && !IsLoopbackListen(e.Listen) {
		p.Add("edge.listen", "%q is not a loopback address: set edge.tls.cert_file and key_file (or edge.allow_plaintext: true behind a TLS-terminating proxy)", e.Listen)
	}
	switch {
	case e.TLS.CertFile != "" && e.TLS.KeyFile == "":
		p.Add("edge.tls.key_file", "required when edge.tls.cert_file is set")
	case e.TLS.CertFile == "" && e.TLS.KeyFile != "":
		p.Add("edge.tls.cert_file", "required when edge.tls.key_file is set")
	}
	switch e.Role {
	case EdgeRoleController, EdgeRoleHybrid, EdgeRoleRelayCoordinator, EdgeRoleWorker:
	default:
		p.Add("edge.role", "%q is not controller, hybrid, relay_coordinator or worker", e.Role)
	}
}

// checkTiming checks the heartbeat, staleness and token lifetimes.
func (e *EdgeConfig) checkTiming(p *confload.Problems) {
	if e.HeartbeatInterval < MinEdgeKeepalive {
		p.Add("edge.heartbeat_interval", "must be >= %s (the listener's keepalive floor), got %s", formatDuration(MinEdgeKeepalive), formatDuration(e.HeartbeatInterval))
	}
	if e.StaleThreshold <= e.HeartbeatInterval {
		p.Add("edge.stale_threshold", "%s must be more than edge.heartbeat_interval (%s)", formatDuration(e.StaleThreshold), formatDuration(e.HeartbeatInterval))
	}
	if e.TokenTTL < time.Minute || e.TokenTTL > 24*time.Hour {
		p.Add("edge.token_ttl", "must be between 1m and 24h, got %s", formatDuration(e.TokenTTL))
	}
	if e.OverlapWindow <= 0 || e.OverlapWindow > e.TokenTTL {
		p.Add("edge.overlap_window", "must be > 0 and <= edge.token_ttl, got %s", formatDuration(e.OverlapWindow))
	}
}

// checkChallenges checks the attestation rate and the shares of pending challenges.
func (e *EdgeConfig) checkChallenges(p *confload.Problems) {
	if e.AttestPerMinute < 1 || e.AttestPerMinute > 10000 {
		p.Add("edge.attest_per_minute", "must be between 1 and 10000, got %d", e.AttestPerMinute)
	}
	inRange := func(key string, n int) bool {
		if n < 1 || n > maxChallenges {
			p.Add(key, "must be between 1 and %d, got %d", maxChallenges, n)
			return false
		}
		return true
	}
	inRange("edge.max_pending_challenges", e.MaxPendingChallenges)
	inRange("edge.reserved_challenges", e.ReservedChallenges)
	// A share larger than the pool is the pool (the server lowers it): old configs with a
	// small max_pending_challenges stay valid.
	if inRange("edge.challenges_per_source", e.ChallengesPerSource) &&
		e.ChallengesPerSource > e.ChallengesPerNetwork && e.ChallengesPerNetwork >= 1 {
		p.Add("edge.challenges_per_source", "%d is more than edge.challenges_per_network (%d): a source is in one network", e.ChallengesPerSource, e.ChallengesPerNetwork)
	}
	inRange("edge.challenges_per_network", e.ChallengesPerNetwork)
}

// checkIssuers checks edge.trusted_issuers: each named once, with a key file.
func (e *EdgeConfig) checkIssuers(p *confload.Problems) {
	seen := map[string]bool{}
	for i, ti := range e.TrustedIssuers {
		key := fmt.Sprintf("edge.trusted_issuers[%d]", i)
		switch {
		case ti.Issuer == "":
			p.Add(key+".issuer", "must not be empty")
		case strings.HasPrefix(ti.Issuer, "keel-relay:"):
			p.Add(key+".issuer", "%q: the keel-relay: prefix is this relay's own", ti.Issuer)
		case seen[ti.Issuer]:
			p.Add(key+".issuer", "%q is listed twice", ti.Issuer)
		}
		seen[ti.Issuer] = true
		if ti.PublicKeyFile == "" {
			p.Add(key+".public_key_file", "must not be empty")
		}
	}
}

// checkStreams checks the limits of the ConnectEdge streams.
func (e *EdgeConfig) checkStreams(p *confload.Problems) {
	positive(p, "edge.hello_timeout", e.HelloTimeout)
	if e.StreamQueue < 1 || e.StreamQueue > MaxEdgeStreamQueue {
		p.Add("edge.stream_queue", "must be between 1 and %d, got %d", MaxEdgeStreamQueue, e.StreamQueue)
	}
	positive(p, "edge.flush_interval", e.FlushInterval)
	positive(p, "edge.drain_grace", e.DrainGrace)
	if e.MaxStreams < 1 || e.MaxStreams > MaxEdgeStreams {
		p.Add("edge.max_streams", "must be between 1 and %d, got %d", MaxEdgeStreams, e.MaxStreams)
	}
}
