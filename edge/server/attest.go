package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keel-relay/keel/edge/edgepb"
	"github.com/keel-relay/keel/edge/ratelimit"
	"github.com/keel-relay/keel/storage"
)

// NonceSize is the size of an attestation challenge nonce.
const NonceSize = 32

// validUUID reports whether s is a UUID in its canonical 36-character form.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// refuse logs and counts a refusal and returns it as a gRPC status.
func (s *Server) refuse(code codes.Code, reason, msg string, attrs ...any) error {
	s.m.refused.With(reason).Inc()
	s.log.Warn("edge request refused", append([]any{"reason", reason, "code", code.String(), "detail", msg}, attrs...)...)
	return status.Error(code, msg)
}

// noSpace refuses a request whose store write was refused for lack of disk space
// (storage.ErrNoSpace): ResourceExhausted, saying why, so that the daemon retries later.
func (s *Server) noSpace(err error, attrs ...any) error {
	return s.refuse(codes.ResourceExhausted, "disk_full", "the relay's disk is full; retry later", append(attrs, "err", err)...)
}

// AttestNode starts an attestation: it stores a challenge (a random nonce) the daemon must
// sign with the key it attests. Anonymous; rate-limited per source IP.
func (s *Server) AttestNode(ctx context.Context, req *edgepb.AttestNodeRequest) (*edgepb.AttestNodeResponse, error) {
	now := s.now()
	src := "unknown"
	if p, ok := peer.FromContext(ctx); ok {
		src = ratelimit.SourceKey(p.Addr)
	}
	if !s.limiter.Allow(src, now) {
		return nil, s.refuse(codes.ResourceExhausted, "attest_rate", "too many attestations from this address; retry in a minute", "source", src)
	}
	switch {
	case !validUUID(req.GetNodeId()):
		return nil, s.refuse(codes.InvalidArgument, "malformed", "node_id must be a UUID", "source", src)
	case req.GetRole() == edgepb.NodeRole_NODE_ROLE_UNSPECIFIED || edgepb.NodeRole_name[int32(req.GetRole())] == "":
		return nil, s.refuse(codes.InvalidArgument, "malformed", "role is missing or unknown", "source", src)
	case req.GetRole() != edgepb.NodeRole_NODE_ROLE_EDGE:
		return nil, s.refuse(codes.Unimplemented, "role", "this relay attests edge daemons only (role NODE_ROLE_EDGE)", "source", src)
	case len(req.GetPublicKey()) != ed25519.PublicKeySize:
		return nil, s.refuse(codes.InvalidArgument, "malformed", fmt.Sprintf("public_key must be a raw %d-byte Ed25519 key", ed25519.PublicKeySize), "source", src)
	}
	var capsBytes []byte
	if req.GetCapabilities() != nil {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req.GetCapabilities())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "capabilities: %v", err)
		}
		capsBytes = b
	}
	nonce := make([]byte, NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, status.Errorf(codes.Internal, "nonce: %v", err)
	}
	c := storage.Challenge{
		ID: uuid.NewString(), NodeID: req.GetNodeId(), Role: NodeRole,
		PublicKey: bytes.Clone(req.GetPublicKey()), Nonce: nonce, Capabilities: capsBytes,
		SourceIP: src, Expires: now.Add(s.opts.ChallengeTTL),
	}
	if err := s.store.PutChallenge(c, s.opts.MaxPendingChallenges); err != nil {
		if errors.Is(err, storage.ErrTooMany) {
			return nil, s.refuse(codes.ResourceExhausted, "challenges_full", "too many pending challenges; retry later", "source", src)
		}
		if errors.Is(err, storage.ErrNoSpace) {
			return nil, s.noSpace(err, "source", src)
		}
		s.log.Error("store challenge", "err", err)
		return nil, status.Error(codes.Internal, "cannot store the challenge")
	}
	s.log.Debug("attestation challenge issued", "node", c.NodeID, "source", src)
	return &edgepb.AttestNodeResponse{ChallengeId: c.ID, ChallengeNonce: nonce}, nil
}

// ChallengeNode finishes an attestation: the nonce must be signed with the attested key.
// With an enrollment token the daemon is enrolled (the token's jti redeemed, the node bound
// to its tenant and its row stored, in one transaction); without one, an enrolled daemon
// attesting its current key gets a fresh token. The answer is a node security token.
func (s *Server) ChallengeNode(ctx context.Context, req *edgepb.ChallengeNodeRequest) (*edgepb.ChallengeNodeResponse, error) {
	now := s.now()
	node := req.GetNodeId()
	c, err := s.store.TakeChallenge(req.GetChallengeId(), now)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, s.refuse(codes.NotFound, "challenge", "challenge unknown, already answered or expired", "node", node)
		}
		if errors.Is(err, storage.ErrNoSpace) {
			return nil, s.noSpace(err, "node", node)
		}
		s.log.Error("take challenge", "err", err)
		return nil, status.Error(codes.Internal, "cannot read the challenge")
	}
	if c.NodeID != node {
		return nil, s.refuse(codes.Unauthenticated, "challenge", "the challenge was issued to another node id", "node", node)
	}
	if !ed25519.Verify(ed25519.PublicKey(c.PublicKey), c.Nonce, req.GetChallengeSignature()) {
		return nil, s.refuse(codes.Unauthenticated, "signature", "challenge signature does not verify under the attested key", "node", node)
	}
	key := ed25519.PublicKey(c.PublicKey)
	if tok := req.GetEnrollmentToken(); tok != "" {
		return s.enroll(node, tok, key, c.Capabilities)
	}
	return s.refresh(node, key)
}

func (s *Server) enroll(node, enrollment string, key ed25519.PublicKey, caps []byte) (*edgepb.ChallengeNodeResponse, error) {
	now := s.now()
	claims, err := s.enrollV.Validate(enrollment)
	if err != nil {
		return nil, s.refuse(codes.Unauthenticated, "enrollment_token", "enrollment token refused: "+err.Error(), "node", node)
	}
	if claims.Tenant == "" || claims.ID == "" {
		return nil, s.refuse(codes.Unauthenticated, "enrollment_token", "enrollment token refused: tid and jti are required", "node", node)
	}
	tok, tc, err := s.issueToken(node, claims.Tenant, key, now)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	old, oldErr := s.store.Daemon(node)
	d := storage.Daemon{
		NodeID: node, Tenant: claims.Tenant, Label: claims.Subject, PublicKey: bytes.Clone(key),
		TokenID: tc.ID, TokenExpiry: tc.Expiry, Capabilities: caps, EnrolledAt: now, LastSeen: now,
	}
	if err := s.store.Enroll(claims.ID, claims.Expiry, d); err != nil {
		switch {
		case errors.Is(err, storage.ErrReplayed):
			return nil, s.refuse(codes.Unauthenticated, "jti_reused", "enrollment token already used", "node", node, "jti", claims.ID)
		case errors.Is(err, storage.ErrConflict):
			return nil, s.refuse(codes.AlreadyExists, "tenant", "node id is enrolled for another tenant", "node", node)
		case errors.Is(err, storage.ErrRevoked):
			return nil, s.refuse(codes.PermissionDenied, "revoked", "node id was revoked", "node", node)
		case errors.Is(err, storage.ErrNoSpace):
			return nil, s.noSpace(err, "node", node)
		}
		s.log.Error("enroll", "node", node, "err", err)
		return nil, status.Error(codes.Internal, "cannot store the enrollment")
	}
	if oldErr == nil && old.TokenID != "" && old.TokenID != tc.ID {
		s.noteBlacklisted(old.TokenID, old.TokenExpiry.Add(s.opts.ClockSkew))
	}
	s.forgetKeys(node)
	if oldErr == nil && !bytes.Equal(old.PublicKey, key) {
		s.reg.Evict(node, status.Error(codes.Unauthenticated, "node enrolled again with another key"))
	}
	s.log.Info("edge daemon enrolled", "node", node, "tenant", claims.Tenant, "label", claims.Subject, "issuer", claims.Issuer, "again", oldErr == nil)
	return &edgepb.ChallengeNodeResponse{NodeSecurityToken: tok, ExpiresAt: timestamppb.New(tc.Expiry)}, nil
}

// errKeyChanged aborts a token refresh whose key is no longer the daemon's.
var errKeyChanged = errors.New("key is not the daemon's current key")

func (s *Server) refresh(node string, key ed25519.PublicKey) (*edgepb.ChallengeNodeResponse, error) {
	now := s.now()
	d, err := s.store.Daemon(node)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, s.refuse(codes.Unauthenticated, "enrollment_token", "enrollment_token is required for a node that is not enrolled", "node", node)
	case err != nil:
		s.log.Error("read daemon", "node", node, "err", err)
		return nil, status.Error(codes.Internal, "cannot read the daemon")
	case d.Revoked:
		return nil, s.refuse(codes.PermissionDenied, "revoked", "node was revoked", "node", node)
	case !bytes.Equal(d.PublicKey, key):
		return nil, s.refuse(codes.Unauthenticated, "key", "the attested key is not the enrolled key (rotate keys with RotateEdgeKey)", "node", node)
	}
	tok, tc, err := s.issueToken(node, d.Tenant, key, now)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	err = s.store.UpdateDaemon(node, func(d *storage.Daemon) error {
		if d.Revoked {
			return storage.ErrRevoked
		}
		if !bytes.Equal(d.PublicKey, key) {
			return errKeyChanged
		}
		d.TokenID, d.TokenExpiry = tc.ID, tc.Expiry
		return nil
	})
	switch {
	case errors.Is(err, storage.ErrRevoked):
		return nil, s.refuse(codes.PermissionDenied, "revoked", "node was revoked", "node", node)
	case errors.Is(err, errKeyChanged):
		return nil, s.refuse(codes.Aborted, "key", "the daemon's key changed meanwhile; retry", "node", node)
	case errors.Is(err, storage.ErrNoSpace):
		return nil, s.noSpace(err, "node", node)
	case err != nil:
		s.log.Error("refresh token", "node", node, "err", err)
		return nil, status.Error(codes.Internal, "cannot store the token")
	}
	s.log.Info("edge token refreshed", "node", node)
	return &edgepb.ChallengeNodeResponse{NodeSecurityToken: tok, ExpiresAt: timestamppb.New(tc.Expiry)}, nil
}
