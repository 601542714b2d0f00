package edged

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/keel-relay/keel/agent"
	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/internal/edkey"
	"github.com/keel-relay/keel/internal/wire/capabilities"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
	"github.com/keel-relay/keel/internal/wire/ids"
)

// Tool names the daemon serves.
const (
	ToolAgentRun = "agent-run"
	ToolShell    = "shell"
)

// rpcTimeout bounds each unary call to the relay.
const rpcTimeout = 30 * time.Second

// Capabilities returns what the daemon declares: its OS and architecture, the tools the
// config enables and the config's labels.
func Capabilities(e config.EdgeConfig) *edgepb.EdgeCapabilities {
	c := &edgepb.EdgeCapabilities{Os: runtime.GOOS, Arch: runtime.GOARCH, LocalTools: localTools(e.Tools)}
	for _, l := range e.Labels {
		if k, v, err := config.SplitLabel(l); err == nil {
			if c.CustomLabels == nil {
				c.CustomLabels = map[string]string{}
			}
			c.CustomLabels[k] = v
		}
	}
	return c
}

// checkCapabilities checks that the capabilities e declares are within the relay's bounds
// (package capabilities), which refuses them otherwise: better said at once, naming the
// config key, than by every attestation and stream.
func checkCapabilities(e config.EdgeConfig) error {
	if err := capabilities.Check(Capabilities(e)); err != nil {
		return fmt.Errorf("edge.labels: the capabilities of this node: %w", err)
	}
	return nil
}

// localTools lists the enabled tools, sorted.
func localTools(t config.ToolsConfig) []string {
	var tools []string
	if len(t.AgentRun.Command) > 0 {
		tools = append(tools, ToolAgentRun)
	}
	if t.Shell.Enabled {
		tools = append(tools, ToolShell)
	}
	slices.Sort(tools)
	return tools
}

// EnrollNodeID returns the node id to enroll with: the agent's node id (node_id, or
// uuid_file) when it is a UUID, else a random UUID generated once and kept beside the
// key (edge.key_file + ".node-id"), so that enrolling again keeps the same id.
func EnrollNodeID(cfg *config.Config) (string, error) {
	if id, err := agent.NodeID(cfg); err == nil && ids.ValidEdgeNodeID(id) == nil {
		return id, nil
	}
	return generatedNodeID(Paths{Key: cfg.Edge.KeyFile, Token: cfg.Edge.TokenFile})
}

// EnrollRequest is what `keel-agent edge enroll` is given.
type EnrollRequest struct {
	// Relay is the relay's edge listener, HOST:PORT.
	Relay string
	// Token is the enrollment token (a JWT made by keel-relay edge enroll-token).
	Token string
	// Force replaces an existing key; without it an existing key is an error.
	Force bool
}

// Enroll generates a node key, attests it to the relay (AttestNode with role
// NODE_ROLE_EDGE and the enrollment token as its authorization metadata, then
// ChallengeNode with the signed nonce and the enrollment token) and
// stores the key and the NodeSecurityToken the relay returns (0600). The new key is
// written before the relay is asked, as edge.key_file + ".new"; both files are put in
// place only once the token is stored, so a failure leaves any previous enrollment as it
// was.
func Enroll(ctx context.Context, cfg *config.Config, req EnrollRequest, log *slog.Logger) (*Credentials, error) {
	p := Paths{Key: cfg.Edge.KeyFile, Token: cfg.Edge.TokenFile}
	if err := checkEnrollRequest(cfg, req, p); err != nil {
		return nil, err
	}
	unlock, err := lockFile(ctx, p.lock())
	if err != nil {
		return nil, err
	}
	defer unlock()
	nodeID, err := EnrollNodeID(cfg)
	if err != nil {
		return nil, fmt.Errorf("enroll: node id: %w", err)
	}
	key, err := edkey.Generate()
	if err != nil {
		return nil, err
	}
	staged, err := stage(p, key)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	defer staged.undo()
	tok, err := attest(ctx, req, cfg.Edge, nodeID, key)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	creds, err := checkIssued(tok, nodeID, key)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	if err := commitLocked(p, creds.Token); err != nil {
		return nil, fmt.Errorf("enroll: the relay enrolled this node but its token could not be stored: %w", err)
	}
	staged.keep()
	log.Info("edge: enrolled", "node_id", nodeID, "relay", req.Relay, "tenant", creds.Claims.Tenant,
		"expires", creds.Claims.Expiry, "key_file", p.Key, "token_file", p.Token)
	return creds, nil
}

// checkEnrollRequest refuses an enrollment before anything is written: no enrollment
// token, capabilities the relay would refuse, or an existing key without req.Force.
func checkEnrollRequest(cfg *config.Config, req EnrollRequest, p Paths) error {
	if req.Token == "" {
		return errors.New("enroll: no enrollment token")
	}
	if err := checkCapabilities(cfg.Edge); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	if _, err := os.Stat(p.Key); err == nil && !req.Force {
		return fmt.Errorf("enroll: %s exists (this node is enrolled); use --force to replace its key", p.Key)
	}
	return nil
}

// attest proves to the relay that this node holds key: AttestNode, then ChallengeNode
// with the signed nonce and the enrollment token. It returns the NodeSecurityToken the
// relay issued, unchecked.
func attest(ctx context.Context, req EnrollRequest, e config.EdgeConfig, nodeID string, key ed25519.PrivateKey) (string, error) {
	conn, err := dial(req.Relay, e)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	client := edgepb.NewNodeClusterServiceClient(conn)

	actx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	// The token also goes with the attestation: a relay that knows it counts the challenge
	// in its reserved pool, which anonymous callers cannot fill (an older relay ignores it).
	mdctx := metadata.AppendToOutgoingContext(actx, edgetoken.AuthorizationKey, edgetoken.Bearer(req.Token))
	att, err := client.AttestNode(mdctx, &edgepb.AttestNodeRequest{
		NodeId: nodeID, Role: edgepb.NodeRole_NODE_ROLE_EDGE, PublicKey: key.Public().(ed25519.PublicKey), Capabilities: Capabilities(e),
	})
	if err != nil {
		return "", fmt.Errorf("AttestNode: %w", err)
	}
	if len(att.GetChallengeNonce()) == 0 || att.GetChallengeId() == "" {
		return "", errors.New("AttestNode: the relay sent no challenge")
	}
	ch, err := client.ChallengeNode(actx, &edgepb.ChallengeNodeRequest{
		ChallengeId:        att.GetChallengeId(),
		NodeId:             nodeID,
		ChallengeSignature: ed25519.Sign(key, att.GetChallengeNonce()),
		BootstrapProof:     &edgepb.ChallengeNodeRequest_EnrollmentToken{EnrollmentToken: req.Token},
	})
	if err != nil {
		return "", fmt.Errorf("ChallengeNode: %w", err)
	}
	return ch.GetNodeSecurityToken(), nil
}

// checkIssued checks a token the relay issued: it parses, names nodeID and is bound to key.
func checkIssued(tok, nodeID string, key ed25519.PrivateKey) (*Credentials, error) {
	tok, claims, err := parseToken([]byte(tok))
	if err != nil {
		return nil, fmt.Errorf("the relay's token: %w", err)
	}
	if claims.Subject != nodeID {
		return nil, fmt.Errorf("the relay's token names node %q, not %q", claims.Subject, nodeID)
	}
	if !claims.BoundTo(key.Public().(ed25519.PublicKey)) {
		return nil, errors.New("the relay's token is not bound to this node's key")
	}
	return &Credentials{NodeID: nodeID, Key: key, Token: tok, Claims: claims}, nil
}
