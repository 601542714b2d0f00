package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/metadata"

	"github.com/keel-relay/keel/internal/wire/edgetoken"
	"github.com/keel-relay/keel/storage"
)

// NodeRole is the role claim of node security tokens.
const NodeRole = "edge"

// keyState is the cached key material of one daemon.
type keyState struct {
	tenant        string
	current       ed25519.PublicKey
	currentJKT    string
	previous      ed25519.PublicKey
	previousJKT   string
	previousUntil time.Time
	revoked       bool
}

// keyFor returns the daemon key whose thumbprint is jkt: the current key, or the previous
// one until the overlap window ends.
func (k *keyState) keyFor(jkt string, now time.Time) (ed25519.PublicKey, bool) {
	switch {
	case jkt == "":
		return nil, false
	case jkt == k.currentJKT:
		return k.current, true
	case k.previous != nil && jkt == k.previousJKT && now.Before(k.previousUntil):
		return k.previous, true
	}
	return nil, false
}

func newKeyState(d storage.Daemon) *keyState {
	k := &keyState{tenant: d.Tenant, current: ed25519.PublicKey(d.PublicKey), revoked: d.Revoked}
	k.currentJKT = edgetoken.Thumbprint(k.current)
	if len(d.PreviousKey) == ed25519.PublicKeySize {
		k.previous = ed25519.PublicKey(d.PreviousKey)
		k.previousJKT = edgetoken.Thumbprint(k.previous)
		k.previousUntil = d.PreviousUntil
	}
	return k
}

// daemonKeys returns the node's key state, from the cache or the store.
func (s *Server) daemonKeys(node string) (*keyState, error) {
	s.mu.Lock()
	k, ok := s.keys[node]
	s.mu.Unlock()
	if ok {
		return k, nil
	}
	d, err := s.store.Daemon(node)
	if err != nil {
		return nil, err
	}
	k = newKeyState(d)
	s.mu.Lock()
	s.keys[node] = k
	s.mu.Unlock()
	return k, nil
}

// forgetKeys drops the node's cached key state (after an enrollment, rotation or revocation).
func (s *Server) forgetKeys(node string) {
	s.mu.Lock()
	delete(s.keys, node)
	s.mu.Unlock()
}

// nodeKeys resolves the issuer of node security tokens: only this relay.
func (s *Server) nodeKeys(iss, _ string) (ed25519.PublicKey, bool) {
	if iss != s.opts.Issuer {
		return nil, false
	}
	return s.pub, true
}

// enrollmentKeys resolves the issuer of enrollment tokens: this relay or a trusted issuer.
func (s *Server) enrollmentKeys(iss, _ string) (ed25519.PublicKey, bool) {
	if iss == s.opts.Issuer {
		return s.pub, true
	}
	k, ok := s.opts.TrustedIssuers[iss]
	return k, ok
}

// errToken marks a node token that is well signed but unusable.
var errToken = errors.New("edge: node token refused")

// bearerToken returns the token of the call's authorization metadata. present is false
// when the call has none; err is set when it has more than one value or a value that is
// not "Bearer <token>" (edgetoken.ParseBearer).
func bearerToken(ctx context.Context) (tok string, present bool, err error) {
	vals := metadata.ValueFromIncomingContext(ctx, edgetoken.AuthorizationKey)
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", true, fmt.Errorf("want one authorization value, got %d", len(vals))
	}
	tok, err = edgetoken.ParseBearer(vals[0])
	return tok, true, err
}

// validateNodeToken checks a node security token's signature, issuer, audience, expiry and
// shape (sub, tid, jti, role, cnf). The blacklist is the caller's.
func (s *Server) validateNodeToken(tok string) (edgetoken.Claims, error) {
	c, err := s.nodeV.Validate(tok)
	if err != nil {
		return c, err
	}
	switch {
	case c.Role != NodeRole:
		return c, fmt.Errorf("%w: role %q", errToken, c.Role)
	case c.Subject == "" || c.Tenant == "" || c.ID == "" || c.Confirmation == "":
		return c, fmt.Errorf("%w: sub, tid, jti and cnf.jkt are required", errToken)
	}
	return c, nil
}

// tokenBlacklisted reports whether a token id is refused. since is when the asking stream
// was authenticated (zero for a new request): a token rotated out after that is still
// accepted on that stream until the rotation's overlap window ends, so the envelopes in
// flight during a rotation do not kill the stream. checkStore also asks the store (the
// first time a token is seen); otherwise only the blacklistings made by this process are
// seen, which are all there are while it holds the store.
func (s *Server) tokenBlacklisted(jti, node string, since, now time.Time, checkStore bool) (bool, error) {
	s.mu.Lock()
	until, listed := s.blacklist[jti]
	rot, rotated := s.rotated[jti]
	s.mu.Unlock()
	if rotated && !since.IsZero() && rot.node == node && since.Before(rot.at) && now.Before(rot.until) {
		return false, nil
	}
	if listed && now.Before(until) {
		return true, nil
	}
	if !checkStore {
		return false, nil
	}
	return s.store.IsBlacklisted(jti)
}

// noteBlacklisted records a blacklisting made in the store by this process.
func (s *Server) noteBlacklisted(jti string, until time.Time) {
	if jti == "" {
		return
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, u := range s.blacklist {
		if !now.Before(u) {
			delete(s.blacklist, id)
		}
	}
	for id, r := range s.rotated {
		if !now.Before(r.until) {
			delete(s.rotated, id)
		}
	}
	if until.After(s.blacklist[jti]) {
		s.blacklist[jti] = until
	}
}

// issueToken signs a node security token for node, bound to key.
func (s *Server) issueToken(node, tenant string, key ed25519.PublicKey, now time.Time) (string, edgetoken.Claims, error) {
	c := edgetoken.Claims{
		Issuer: s.opts.Issuer, Subject: node, Audience: edgetoken.AudienceNode, Tenant: tenant,
		ID: uuid.NewString(), Role: NodeRole, Confirmation: edgetoken.Thumbprint(key),
		IssuedAt: now.Truncate(time.Second), NotBefore: now.Truncate(time.Second),
		Expiry: now.Add(s.opts.TokenTTL).Truncate(time.Second),
	}
	tok, err := edgetoken.Sign(s.opts.SigningKey, s.kid, c)
	if err != nil {
		return "", c, fmt.Errorf("edge: sign node token: %w", err)
	}
	return tok, c, nil
}

// EnrollmentToken signs an enrollment token of this relay for tenant, labelled label,
// valid for ttl from now.
func EnrollmentToken(key ed25519.PrivateKey, issuer, tenant, label string, ttl time.Duration, now time.Time) (string, edgetoken.Claims, error) {
	if tenant == "" {
		return "", edgetoken.Claims{}, errors.New("edge: enrollment token: tenant is required")
	}
	if ttl <= 0 {
		return "", edgetoken.Claims{}, fmt.Errorf("edge: enrollment token: ttl %s is not positive", ttl)
	}
	c := edgetoken.Claims{
		Issuer: issuer, Subject: label, Audience: edgetoken.AudienceEnrollment, Tenant: tenant,
		ID: uuid.NewString(), IssuedAt: now.Truncate(time.Second), NotBefore: now.Truncate(time.Second),
		Expiry: now.Add(ttl).Truncate(time.Second),
	}
	pub := key.Public().(ed25519.PublicKey)
	tok, err := edgetoken.Sign(key, edgetoken.Thumbprint(pub), c)
	if err != nil {
		return "", c, fmt.Errorf("edge: enrollment token: %w", err)
	}
	return tok, c, nil
}
