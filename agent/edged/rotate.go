package edged

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/internal/edkey"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/envelope"
)

// RotateKey replaces the node key: it generates a new key, stores it as
// edge.key_file + ".new", sends RotateEdgeKey (an envelope of kind Rotate signed by the
// current key with a fresh nonce, and the new key's proof of possession) and, when the
// relay accepts, installs the new key and the token the relay issued for it (see
// commitLocked for the order). The old key stays as edge.key_file + ".prev" until the
// new token is stored. It holds the credential lock throughout, so two rotations on one
// node do not race.
func RotateKey(ctx context.Context, relay string, e config.EdgeConfig, log *slog.Logger) (*Credentials, *edgepb.RotateEdgeKeyResponse, error) {
	p := Paths{Key: e.KeyFile, Token: e.TokenFile}
	unlock, err := lockFile(ctx, p.lock())
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	cur, err := loadLocked(p, log)
	if err != nil {
		return nil, nil, fmt.Errorf("rotate key: %w", err)
	}
	newKey, err := edkey.Generate()
	if err != nil {
		return nil, nil, err
	}
	req, err := envelope.SealRotate(cur.Key, newKey, cur.Token, cur.NodeID, envelope.NewNonce(), time.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("rotate key: %w", err)
	}
	staged, err := stage(p, newKey)
	if err != nil {
		return nil, nil, fmt.Errorf("rotate key: %w", err)
	}
	defer staged.undo()
	resp, err := sendRotate(ctx, relay, e, req)
	if err != nil {
		return nil, nil, fmt.Errorf("rotate key: %w", err)
	}
	// The relay now holds the new key: whatever follows, the staged key stays.
	staged.keep()
	creds, err := checkIssued(resp.GetNodeSecurityToken(), cur.NodeID, newKey)
	if err != nil {
		// The relay switched keys but its answer is unusable: the staged key is kept for
		// the operator to inspect.
		return nil, nil, fmt.Errorf("rotate key: %w (the new key is kept in %s)", err, p.keyNew())
	}
	if err := commitLocked(p, creds.Token); err != nil {
		return nil, nil, fmt.Errorf("rotate key: the relay accepted the new key but it could not be stored: %w", err)
	}
	log.Info("edge: key rotated", "node_id", creds.NodeID, "expires", creds.Claims.Expiry,
		"overlap_window", resp.GetOverlapWindow().AsDuration())
	return creds, resp, nil
}

// sendRotate sends the sealed rotation request req to relay (RotateEdgeKey).
func sendRotate(ctx context.Context, relay string, e config.EdgeConfig, req *edgepb.RotateEdgeKeyRequest) (*edgepb.RotateEdgeKeyResponse, error) {
	conn, err := dial(relay, e)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := edgepb.NewNodeClusterServiceClient(conn).RotateEdgeKey(rctx, req)
	if err != nil {
		return nil, fmt.Errorf("RotateEdgeKey: %w", err)
	}
	return resp, nil
}

// RotateKey rotates the node key now (see the package function RotateKey) and switches
// the live stream to the new key and token: sealing waits meanwhile, so no event goes
// out with the old token once the relay has blacklisted it.
func (d *Daemon) RotateKey(ctx context.Context) error {
	d.credMu.Lock()
	defer d.credMu.Unlock()
	creds, _, err := RotateKey(ctx, d.relay, d.edgeConfig(), d.log)
	if err != nil {
		return err
	}
	d.installCredsLocked(creds)
	return nil
}
