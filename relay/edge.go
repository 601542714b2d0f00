package relay

import (
	"crypto/ed25519"
	"fmt"

	"github.com/keel-relay/keel/edge/keys"
	edgeserver "github.com/keel-relay/keel/edge/server"
	"github.com/keel-relay/keel/internal/membudget"
	"github.com/keel-relay/keel/relay/config"
)

// edgeOptions returns the edge API's options from cfg's edge section, sized by the memory
// plan. The signing key is read from data_dir (created on first start); the trusted issuers'
// key files are read.
func edgeOptions(cfg *config.Config, plan membudget.Plan, pressure membudget.Pressure) (edgeserver.Options, error) {
	e := cfg.Edge
	key, err := keys.LoadOrCreate(edgeserver.SigningKeyPath(cfg.DataDir))
	if err != nil {
		return edgeserver.Options{}, err
	}
	trusted := make(map[string]ed25519.PublicKey, len(e.TrustedIssuers))
	for i, ti := range e.TrustedIssuers {
		pub, err := keys.LoadPublicKey(ti.PublicKeyFile)
		if err != nil {
			return edgeserver.Options{}, fmt.Errorf("edge.trusted_issuers[%d] (%s): %w", i, ti.Issuer, err)
		}
		trusted[ti.Issuer] = pub
	}
	return edgeserver.Options{
		Listen: e.Listen, TLSCertFile: e.TLS.CertFile, TLSKeyFile: e.TLS.KeyFile,
		Role: e.Role, Worker: e.Role == config.EdgeRoleWorker,
		HeartbeatInterval: e.HeartbeatInterval, StaleThreshold: e.StaleThreshold,
		TokenTTL: e.TokenTTL, OverlapWindow: e.OverlapWindow, AttestPerMinute: e.AttestPerMinute,
		MaxPendingChallenges: e.MaxPendingChallenges, ReservedChallenges: e.ReservedChallenges,
		ChallengesPerSource: e.ChallengesPerSource, ChallengesPerNetwork: e.ChallengesPerNetwork,
		HelloTimeout: e.HelloTimeout, StreamQueue: e.StreamQueue, FlushInterval: e.FlushInterval,
		DrainGrace: e.DrainGrace,
		MaxStreams: plan.EdgeStreams, MaxConnections: plan.EdgeConnections, Pressure: pressure,
		SigningKey: key, Issuer: keys.Issuer(cfg.NodeID), TrustedIssuers: trusted,
		AgentRunTimeout: cfg.RemoteRun.Timeout, Reflection: e.ReflectionOn(),
	}, nil
}
