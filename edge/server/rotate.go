package server

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/envelope"
	"github.com/keel-relay/keel/storage"
)

// RotateEdgeKey swaps a daemon's key. The envelope, signed with the current key, carries the
// new key and a fresh nonce; the new key signs the rotation digest. In one store transaction
// the new key becomes current, the old one stays accepted for the overlap window, the old
// token is blacklisted and the nonce remembered; a new token bound to the new key is issued.
//
// Codes: InvalidArgument for a malformed request, a failed new-key signature or a replayed
// nonce; Unauthenticated for a bad token or an envelope that does not verify under the
// current key; FailedPrecondition when the daemon is revoked or Unhealthy; Aborted when a
// concurrent rotation won; ResourceExhausted when the relay's disk is full.
func (s *Server) RotateEdgeKey(ctx context.Context, req *edgepb.RotateEdgeKeyRequest) (*edgepb.RotateEdgeKeyResponse, error) {
	now := s.now()
	env := req.GetCurrentEnvelope()
	if env == nil {
		return nil, s.refuse(codes.InvalidArgument, "malformed", "current_envelope is required")
	}
	unverified, err := envelope.Decode(env.GetPayload())
	if err != nil {
		return nil, s.refuse(codes.InvalidArgument, "malformed", "current_envelope payload: "+err.Error())
	}
	node := unverified.NodeID
	c, err := s.validateNodeToken(env.GetNodeSecurityToken())
	if err != nil {
		return nil, s.refuse(codes.Unauthenticated, "token", "node token refused: "+err.Error(), "node", node)
	}
	if c.Subject != node {
		return nil, s.refuse(codes.Unauthenticated, "node_mismatch", "the envelope's node id is not the token's subject", "node", node)
	}
	listed, err := s.tokenBlacklisted(c.ID, node, time.Time{}, now, true)
	if err != nil {
		return nil, status.Error(codes.Internal, "cannot read the blacklist")
	}
	if listed {
		return nil, s.refuse(codes.Unauthenticated, "blacklisted", "node token is blacklisted", "node", node)
	}
	d, err := s.store.Daemon(node)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, s.refuse(codes.Unauthenticated, "unknown_daemon", "node is not enrolled", "node", node)
	case err != nil:
		return nil, status.Error(codes.Internal, "cannot read the daemon")
	case d.Revoked:
		return nil, s.refuse(codes.FailedPrecondition, "revoked", "node is revoked", "node", node)
	case d.Tenant != c.Tenant:
		return nil, s.refuse(codes.Unauthenticated, "tenant", "token tenant is not the daemon's", "node", node)
	}
	if s.stale(d, now) {
		return nil, s.refuse(codes.FailedPrecondition, "unhealthy", "node is unhealthy: reconnect and heartbeat before rotating", "node", node)
	}
	k := newKeyState(d)
	if c.Confirmation != k.currentJKT {
		return nil, s.refuse(codes.Unauthenticated, "key", "the token is not bound to the daemon's current key", "node", node)
	}
	p, newKey, nonce, err := envelope.OpenRotate(req, k.current)
	if err != nil {
		switch {
		case errors.Is(err, envelope.ErrSignature):
			return nil, s.refuse(codes.Unauthenticated, "signature", err.Error(), "node", node)
		case errors.Is(err, envelope.ErrNewKeySignature):
			return nil, s.refuse(codes.InvalidArgument, "new_key_signature", err.Error(), "node", node)
		}
		return nil, s.refuse(codes.InvalidArgument, "malformed", err.Error(), "node", node)
	}
	if p.Timestamp.Before(now.Add(-s.opts.ClockSkew)) || p.Timestamp.After(now.Add(s.opts.ClockSkew)) {
		return nil, s.refuse(codes.Unauthenticated, "timestamp", "rotation timestamp is too far from the relay clock", "node", node)
	}
	tok, tc, err := s.issueToken(node, d.Tenant, newKey, now)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	overlapUntil := now.Add(s.opts.OverlapWindow)
	// A captured request is useless once its token expires (and once the key changed); the
	// nonce is kept until then.
	keepNonce := c.Expiry.Add(s.opts.ClockSkew)
	err = s.store.RotateKey(node, d.PublicKey, newKey, overlapUntil, nonce, keepNonce, tc.ID, tc.Expiry)
	switch {
	case errors.Is(err, storage.ErrReplayed):
		return nil, s.refuse(codes.InvalidArgument, "nonce_replayed", "rotation nonce already used", "node", node)
	case errors.Is(err, storage.ErrRevoked):
		return nil, s.refuse(codes.FailedPrecondition, "revoked", "node is revoked", "node", node)
	case errors.Is(err, storage.ErrConflict):
		return nil, s.refuse(codes.Aborted, "concurrent_rotation", "a concurrent rotation changed the key; retry", "node", node)
	case errors.Is(err, storage.ErrNotFound):
		return nil, s.refuse(codes.Unauthenticated, "unknown_daemon", "node is not enrolled", "node", node)
	case errors.Is(err, storage.ErrNoSpace):
		return nil, s.noSpace(err, "node", node)
	case err != nil:
		s.log.Error("rotate key", "node", node, "err", err)
		return nil, status.Error(codes.Internal, "cannot store the rotation")
	}
	// The store blacklisted the row's token; the request's token too if it was another.
	if c.ID != d.TokenID {
		if err := s.store.Blacklist(c.ID, c.Expiry); err != nil {
			s.log.Error("blacklist rotated-out token", "node", node, "err", err)
		}
	}
	s.mu.Lock()
	for _, id := range []string{c.ID, d.TokenID} {
		if id != "" {
			s.rotated[id] = rotation{node: node, at: now, until: overlapUntil}
		}
	}
	s.mu.Unlock()
	s.noteBlacklisted(c.ID, c.Expiry.Add(s.opts.ClockSkew))
	s.noteBlacklisted(d.TokenID, d.TokenExpiry.Add(s.opts.ClockSkew))
	s.forgetKeys(node)
	s.log.Info("edge key rotated", "node", node, "overlap_until", overlapUntil.Format(time.RFC3339))
	return &edgepb.RotateEdgeKeyResponse{
		NodeSecurityToken: tok,
		IssuedAt:          timestamppb.New(tc.IssuedAt),
		ExpiresAt:         timestamppb.New(tc.Expiry),
		OverlapWindow:     durationpb.New(s.opts.OverlapWindow),
	}, nil
}
