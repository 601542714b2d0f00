package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
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
//
// The steps: authenticate the caller (token, daemon, health, key binding), check the envelope
// (signatures, timestamp), rotate (issue the new token and store the rotation in one
// transaction), note it in memory (blacklists, rotated tokens, key cache), answer.
func (s *Server) RotateEdgeKey(ctx context.Context, req *edgepb.RotateEdgeKeyRequest) (*edgepb.RotateEdgeKeyResponse, error) {
	now := s.now()
	caller, err := s.rotationCaller(req, now)
	if err != nil {
		return nil, err
	}
	newKey, nonce, err := s.rotationEnvelope(req, caller, now)
	if err != nil {
		return nil, err
	}
	done, err := s.rotateKey(caller, newKey, nonce, now)
	if err != nil {
		return nil, err
	}
	s.noteRotation(caller, done, now)
	s.log.Info("edge key rotated", "node", caller.node, "overlap_until", done.overlapUntil.Format(time.RFC3339))
	return &edgepb.RotateEdgeKeyResponse{
		NodeSecurityToken: done.token,
		IssuedAt:          timestamppb.New(done.claims.IssuedAt),
		ExpiresAt:         timestamppb.New(done.claims.Expiry),
		OverlapWindow:     durationpb.New(s.opts.OverlapWindow),
	}, nil
}

// rotationCaller is the daemon asking for a rotation, once authenticated.
type rotationCaller struct {
	node   string
	claims edgetoken.Claims // of the request's token
	daemon storage.Daemon   // as stored before the rotation
	keys   *keyState        // of daemon
}

// rotationDone is a rotation the store has committed.
type rotationDone struct {
	token        string           // the new token, bound to the new key
	claims       edgetoken.Claims // its claims
	overlapUntil time.Time        // the old key is accepted until then
}

// rotationCaller authenticates a rotation request: the envelope names the node, the token is
// valid, not blacklisted, the node's, of its tenant and bound to its current key, and the
// daemon is enrolled, not revoked and healthy. The envelope's signatures are not checked yet.
func (s *Server) rotationCaller(req *edgepb.RotateEdgeKeyRequest, now time.Time) (rotationCaller, error) {
	env := req.GetCurrentEnvelope()
	if env == nil {
		return rotationCaller{}, s.refuse(codes.InvalidArgument, "malformed", "current_envelope is required")
	}
	unverified, err := envelope.Decode(env.GetPayload())
	if err != nil {
		return rotationCaller{}, s.refuse(codes.InvalidArgument, "malformed", "current_envelope payload: "+err.Error())
	}
	node := unverified.NodeID
	c, err := s.validateNodeToken(env.GetNodeSecurityToken())
	if err != nil {
		return rotationCaller{}, s.refuse(codes.Unauthenticated, "token", "node token refused: "+err.Error(), "node", node)
	}
	if c.Subject != node {
		return rotationCaller{}, s.refuse(codes.Unauthenticated, "node_mismatch", "the envelope's node id is not the token's subject", "node", node)
	}
	listed, err := s.tokenBlacklisted(c.ID, node, time.Time{}, now, true)
	if err != nil {
		return rotationCaller{}, status.Error(codes.Internal, "cannot read the blacklist")
	}
	if listed {
		return rotationCaller{}, s.refuse(codes.Unauthenticated, "blacklisted", "node token is blacklisted", "node", node)
	}
	d, err := s.store.Daemon(node)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return rotationCaller{}, s.refuse(codes.Unauthenticated, "unknown_daemon", "node is not enrolled", "node", node)
	case err != nil:
		return rotationCaller{}, status.Error(codes.Internal, "cannot read the daemon")
	case d.Revoked:
		return rotationCaller{}, s.refuse(codes.FailedPrecondition, "revoked", "node is revoked", "node", node)
	case d.Tenant != c.Tenant:
		return rotationCaller{}, s.refuse(codes.Unauthenticated, "tenant", "token tenant is not the daemon's", "node", node)
	}
	if s.stale(d, now) {
		return rotationCaller{}, s.refuse(codes.FailedPrecondition, "unhealthy", "node is unhealthy: reconnect and heartbeat before rotating", "node", node)
	}
	k := newKeyState(d)
	if c.Confirmation != k.currentJKT {
		return rotationCaller{}, s.refuse(codes.Unauthenticated, "key", "the token is not bound to the daemon's current key", "node", node)
	}
	return rotationCaller{node: node, claims: c, daemon: d, keys: k}, nil
}

// rotationEnvelope checks the envelope of an authenticated caller: signed with its current
// key, the rotation digest signed with the new key, the timestamp within the clock skew. It
// returns the new key and the rotation's nonce.
func (s *Server) rotationEnvelope(req *edgepb.RotateEdgeKeyRequest, caller rotationCaller, now time.Time) (ed25519.PublicKey, []byte, error) {
	p, newKey, nonce, err := envelope.OpenRotate(req, caller.keys.current)
	if err != nil {
		switch {
		case errors.Is(err, envelope.ErrSignature):
			return nil, nil, s.refuse(codes.Unauthenticated, "signature", err.Error(), "node", caller.node)
		case errors.Is(err, envelope.ErrNewKeySignature):
			return nil, nil, s.refuse(codes.InvalidArgument, "new_key_signature", err.Error(), "node", caller.node)
		}
		return nil, nil, s.refuse(codes.InvalidArgument, "malformed", err.Error(), "node", caller.node)
	}
	if p.Timestamp.Before(now.Add(-s.opts.ClockSkew)) || p.Timestamp.After(now.Add(s.opts.ClockSkew)) {
		return nil, nil, s.refuse(codes.Unauthenticated, "timestamp", "rotation timestamp is too far from the relay clock", "node", caller.node)
	}
	return newKey, nonce, nil
}

// rotateKey issues the token bound to newKey and stores the rotation in one transaction: the
// new key current, the old one accepted until the overlap window ends, the stored token
// blacklisted, the nonce remembered.
func (s *Server) rotateKey(caller rotationCaller, newKey ed25519.PublicKey, nonce []byte, now time.Time) (rotationDone, error) {
	node, d, c := caller.node, caller.daemon, caller.claims
	tok, tc, err := s.issueToken(node, d.Tenant, newKey, now)
	if err != nil {
		return rotationDone{}, status.Error(codes.Internal, err.Error())
	}
	overlapUntil := now.Add(s.opts.OverlapWindow)
	// A captured request is useless once its token expires (and once the key changed); the
	// nonce is kept until then.
	keepNonce := c.Expiry.Add(s.opts.ClockSkew)
	err = s.store.RotateKey(node, d.PublicKey, newKey, overlapUntil, nonce, keepNonce, tc.ID, tc.Expiry)
	switch {
	case errors.Is(err, storage.ErrReplayed):
		return rotationDone{}, s.refuse(codes.InvalidArgument, "nonce_replayed", "rotation nonce already used", "node", node)
	case errors.Is(err, storage.ErrRevoked):
		return rotationDone{}, s.refuse(codes.FailedPrecondition, "revoked", "node is revoked", "node", node)
	case errors.Is(err, storage.ErrConflict):
		return rotationDone{}, s.refuse(codes.Aborted, "concurrent_rotation", "a concurrent rotation changed the key; retry", "node", node)
	case errors.Is(err, storage.ErrNotFound):
		return rotationDone{}, s.refuse(codes.Unauthenticated, "unknown_daemon", "node is not enrolled", "node", node)
	case errors.Is(err, storage.ErrNoSpace):
		return rotationDone{}, s.noSpace(err, "node", node)
	case err != nil:
		s.log.Error("rotate key", "node", node, "err", err)
		return rotationDone{}, status.Error(codes.Internal, "cannot store the rotation")
	}
	return rotationDone{token: tok, claims: tc, overlapUntil: overlapUntil}, nil
}

// noteRotation brings the rest in line with a committed rotation: the request's token is
// blacklisted too if the store's row had another, both tokens are remembered as rotated out
// (streams connected before keep going until the overlap ends), the in-memory blacklist
// learns them, and the node's cached keys are dropped.
func (s *Server) noteRotation(caller rotationCaller, done rotationDone, now time.Time) {
	node, d, c := caller.node, caller.daemon, caller.claims
	// The store blacklisted the row's token; the request's token too if it was another.
	if c.ID != d.TokenID {
		if err := s.store.Blacklist(c.ID, c.Expiry); err != nil {
			s.log.Error("blacklist rotated-out token", "node", node, "err", err)
		}
	}
	s.mu.Lock()
	for _, id := range []string{c.ID, d.TokenID} {
		if id != "" {
			s.rotated[id] = rotation{node: node, at: now, until: done.overlapUntil}
		}
	}
	s.mu.Unlock()
	s.noteBlacklisted(c.ID, c.Expiry.Add(s.opts.ClockSkew))
	s.noteBlacklisted(d.TokenID, d.TokenExpiry.Add(s.opts.ClockSkew))
	s.forgetKeys(node)
}
