package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keel-relay/keel/edge/quota"
	"github.com/keel-relay/keel/edge/ratelimit"
	"github.com/keel-relay/keel/internal/wire/capabilities"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
	"github.com/keel-relay/keel/internal/wire/ids"
	"github.com/keel-relay/keel/storage"
)

// NonceSize is the size of an attestation challenge nonce.
const NonceSize = 32

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
// sign with the key it attests. Anonymous callers are rate-limited per source IP and share
// the anonymous pool of pending challenges; a caller whose authorization metadata carries a
// valid enrollment token, or its node's current security token, is limited per token and
// counted in the reserved pool (see attestCaller and package quota). A pool or share that
// is full makes room by evicting its oldest pending challenge.
func (s *Server) AttestNode(ctx context.Context, req *edgepb.AttestNodeRequest) (*edgepb.AttestNodeResponse, error) {
	now := s.now()
	src, network := "unknown", "unknown"
	if p, ok := peer.FromContext(ctx); ok {
		src, network = ratelimit.SourceKey(p.Addr), ratelimit.NetworkKey(p.Addr)
	}
	caller, err := s.attestCaller(ctx, req, src, now)
	if err != nil {
		return nil, err
	}
	switch {
	case ids.ValidEdgeNodeID(req.GetNodeId()) != nil:
		return nil, s.refuse(codes.InvalidArgument, "malformed", "node_id must be a UUID", "source", src)
	case req.GetRole() == edgepb.NodeRole_NODE_ROLE_UNSPECIFIED || edgepb.NodeRole_name[int32(req.GetRole())] == "":
		return nil, s.refuse(codes.InvalidArgument, "malformed", "role is missing or unknown", "source", src)
	case req.GetRole() != edgepb.NodeRole_NODE_ROLE_EDGE:
		return nil, s.refuse(codes.Unimplemented, "role", "this relay attests edge daemons only (role NODE_ROLE_EDGE)", "source", src)
	case len(req.GetPublicKey()) != ed25519.PublicKeySize:
		return nil, s.refuse(codes.InvalidArgument, "malformed", fmt.Sprintf("public_key must be a raw %d-byte Ed25519 key", ed25519.PublicKeySize), "source", src)
	}
	if err := capabilities.Check(req.GetCapabilities()); err != nil {
		return nil, s.refuse(codes.InvalidArgument, "capabilities", err.Error(), "source", src, "node", req.GetNodeId())
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
		Issued: now, Pool: caller.pool.String(), Network: network, Quota: caller.quota,
	}
	entry := quota.Entry{ID: c.ID, Pool: caller.pool, Source: src, Network: network, Token: caller.quota, Issued: now}
	evicted, err := s.challenges.Admit(entry, now, func(evict []string) error { return s.store.AdmitChallenge(c, evict) })
	if err != nil {
		if errors.Is(err, storage.ErrNoSpace) {
			return nil, s.noSpace(err, "source", src)
		}
		s.log.Error("store challenge", "err", err)
		return nil, status.Error(codes.Internal, "cannot store the challenge")
	}
	for _, v := range evicted {
		s.m.evicted.With(string(v.Share)).Inc()
		s.log.Debug("pending challenge evicted", "challenge", v.ID, "pool", v.Pool, "full", v.Share, "source", v.Source, "issued", v.Issued)
	}
	s.log.Debug("attestation challenge issued", "node", c.NodeID, "source", src, "pool", caller.pool, "token", caller.kind)
	return &edgepb.AttestNodeResponse{ChallengeId: c.ID, ChallengeNonce: nonce}, nil
}

// attestCaller is who asks AttestNode for a challenge.
type attestCaller struct {
	pool quota.Pool
	// For the reserved pool: kind is "enrollment" or "node", quota identifies the token.
	kind, quota string
}

// attestCaller admits an AttestNode call and says in which pool it counts. A call with a
// token that is valid for it (see attestToken: the checks that cost no write; nothing is
// redeemed) goes to the reserved pool and is limited per token, not per source, so that a
// fleet behind one address, each agent with its own token, is not held back by the
// address's rate. Any other call is anonymous and within its source's rate: a call without
// authorization metadata, or whose token does not validate (expired, say: the call is then
// served as an anonymous one, and ChallengeNode says what is wrong with the token). Metadata
// that is not "Bearer <token>" is refused (InvalidArgument), within the source's rate too.
func (s *Server) attestCaller(ctx context.Context, req *edgepb.AttestNodeRequest, src string, now time.Time) (attestCaller, error) {
	tok, present, err := bearerToken(ctx)
	if present && err == nil {
		c, terr := s.attestToken(tok, req)
		if terr == nil {
			if !s.tokenLimiter.Allow(c.quota, now) {
				return c, s.refuse(codes.ResourceExhausted, "attest_token_rate", "too many attestations with this token; retry in a minute", "source", src, "token", c.kind)
			}
			return c, nil
		}
		if st, ok := status.FromError(terr); ok {
			return c, st.Err()
		}
		s.log.Debug("attestation token not accepted; the call counts as anonymous", "source", src, "err", terr)
	}
	if !s.limiter.Allow(src, now) {
		return attestCaller{}, s.refuse(codes.ResourceExhausted, "attest_rate", "too many attestations from this address; retry in a minute", "source", src)
	}
	if err != nil {
		return attestCaller{}, s.refuse(codes.InvalidArgument, "bearer", "authorization: "+err.Error(), "source", src)
	}
	return attestCaller{pool: quota.Anonymous}, nil
}

// attestToken checks the token of an AttestNode's authorization: an enrollment token
// (signature, issuer, audience, expiry; tid and jti present), or the current security token
// of the node the request names, which must attest the node's current key (a refresh), the
// node not revoked. An error that is a gRPC status is the relay's own failure; any other
// is the token's.
func (s *Server) attestToken(tok string, req *edgepb.AttestNodeRequest) (attestCaller, error) {
	_, parsed, err := edgetoken.Parse(tok)
	if err != nil {
		return attestCaller{}, err
	}
	switch parsed.Audience {
	case edgetoken.AudienceEnrollment:
		c, err := s.enrollV.Validate(tok)
		if err != nil {
			return attestCaller{}, fmt.Errorf("enrollment token: %w", err)
		}
		if c.Tenant == "" || c.ID == "" {
			return attestCaller{}, errors.New("enrollment token: tid and jti are required")
		}
		return attestCaller{pool: quota.Reserved, kind: "enrollment", quota: tokenQuotaKey("enrollment", c)}, nil
	case edgetoken.AudienceNode:
		c, err := s.validateNodeToken(tok)
		if err != nil {
			return attestCaller{}, fmt.Errorf("node token: %w", err)
		}
		if c.Subject != req.GetNodeId() {
			return attestCaller{}, fmt.Errorf("node token: for node %s, not %q", c.Subject, req.GetNodeId())
		}
		d, err := s.store.Daemon(c.Subject)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return attestCaller{}, fmt.Errorf("node token: node %s is not enrolled", c.Subject)
		case err != nil:
			s.log.Error("read daemon", "node", c.Subject, "err", err)
			return attestCaller{}, status.Error(codes.Internal, "cannot read the daemon")
		case d.Revoked:
			return attestCaller{}, fmt.Errorf("node token: node %s is revoked", c.Subject)
		case d.TokenID != c.ID || d.Tenant != c.Tenant:
			return attestCaller{}, fmt.Errorf("node token: not the current token of node %s", c.Subject)
		case !bytes.Equal(d.PublicKey, req.GetPublicKey()):
			return attestCaller{}, fmt.Errorf("node token: the attested key is not node %s's current key", c.Subject)
		}
		return attestCaller{pool: quota.Reserved, kind: "node", quota: tokenQuotaKey("node", c)}, nil
	}
	return attestCaller{}, fmt.Errorf("token audience %q is neither %q nor %q", parsed.Audience, edgetoken.AudienceEnrollment, edgetoken.AudienceNode)
}

// tokenQuotaKey identifies a token in the reserved pool and its rate limiter: a digest of
// its kind, issuer and jti (short, whatever the issuer's length).
func tokenQuotaKey(kind string, c edgetoken.Claims) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + c.Issuer + "\x00" + c.ID))
	return hex.EncodeToString(sum[:16])
}

// ChallengeNode finishes an attestation: the nonce must be signed with the attested key.
// With an enrollment token the daemon is enrolled (the token's jti redeemed, the node bound
// to its tenant and its row stored, in one transaction); without one, an enrolled daemon
// attesting its current key gets a fresh token. The answer is a node security token.
func (s *Server) ChallengeNode(ctx context.Context, req *edgepb.ChallengeNodeRequest) (*edgepb.ChallengeNodeResponse, error) {
	now := s.now()
	node := req.GetNodeId()
	id := req.GetChallengeId()
	if ids.ValidUUID("challenge id", id) != nil { // every challenge id is a UUID: nothing else is looked up
		return nil, s.refuse(codes.NotFound, "challenge", "challenge unknown, already answered, expired or evicted", "node", node)
	}
	c, err := s.store.TakeChallenge(id, now)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			s.challenges.Remove(id)
			return nil, s.refuse(codes.NotFound, "challenge", "challenge unknown, already answered, expired or evicted", "node", node)
		}
		if errors.Is(err, storage.ErrNoSpace) {
			return nil, s.noSpace(err, "node", node)
		}
		s.log.Error("take challenge", "err", err)
		return nil, status.Error(codes.Internal, "cannot read the challenge")
	}
	s.challenges.Remove(id)
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
