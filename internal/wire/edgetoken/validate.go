package edgetoken

import (
	"crypto/ed25519"
	"fmt"
	"time"
)

// Validator checks tokens of one audience. The zero Leeway means none; a nil Now means
// time.Now.
type Validator struct {
	// Keys returns the public key of issuer iss for key id kid (kid may be empty), and
	// false when the issuer or key is unknown.
	Keys func(iss, kid string) (ed25519.PublicKey, bool)
	// Audience is the aud a token must carry (AudienceEnrollment or AudienceNode).
	Audience string
	// Leeway is the clock skew tolerated on exp, nbf and iat.
	Leeway time.Duration
	// Now is the clock.
	Now func() time.Time
}

// Validate parses token and checks, in this order: alg is exactly EdDSA and the header
// has no crit (ErrAlgorithm); iss is non-empty and Keys knows it and kid (ErrIssuer); the
// Ed25519 signature (ErrSignature); aud equals v.Audience (ErrAudience); exp is present
// (ErrMalformed) and not passed (ErrExpired); nbf and iat are not in the future
// (ErrNotYetValid); leeway applies to the last three. It returns the claims; jti, tid,
// sub, role and cnf are the caller's to check.
func (v Validator) Validate(token string) (Claims, error) {
	p, err := parse(token)
	if err != nil {
		return Claims{}, err
	}
	if p.header.Alg != Algorithm {
		return Claims{}, fmt.Errorf("%w: alg %q, only %q is accepted", ErrAlgorithm, p.header.Alg, Algorithm)
	}
	if p.hasCrit {
		return Claims{}, fmt.Errorf("%w: critical header parameters %q are not supported", ErrAlgorithm, p.header.Crit)
	}
	c := p.claims
	if c.Issuer == "" {
		return Claims{}, fmt.Errorf("%w: no iss claim", ErrIssuer)
	}
	var pub ed25519.PublicKey
	ok := false
	if v.Keys != nil {
		pub, ok = v.Keys(c.Issuer, p.header.Kid)
	}
	if !ok {
		return Claims{}, fmt.Errorf("%w: %q (kid %q)", ErrIssuer, c.Issuer, p.header.Kid)
	}
	if len(pub) != ed25519.PublicKeySize {
		return Claims{}, fmt.Errorf("%w: key of %q (kid %q) is %d bytes, want %d", ErrIssuer, c.Issuer, p.header.Kid, len(pub), ed25519.PublicKeySize)
	}
	if len(p.sig) != ed25519.SignatureSize || !ed25519.Verify(pub, []byte(p.input), p.sig) {
		return Claims{}, fmt.Errorf("%w: issuer %q (kid %q)", ErrSignature, c.Issuer, p.header.Kid)
	}
	if v.Audience == "" {
		return Claims{}, fmt.Errorf("%w: the validator has no audience", ErrAudience)
	}
	if c.Audience != v.Audience {
		return Claims{}, fmt.Errorf("%w: %q, want %q", ErrAudience, c.Audience, v.Audience)
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	leeway := max(v.Leeway, 0)
	if c.Expiry.IsZero() {
		return Claims{}, fmt.Errorf("%w: no exp claim", ErrMalformed)
	}
	if !now.Before(c.Expiry.Add(leeway)) {
		return Claims{}, fmt.Errorf("%w: at %s (now %s, leeway %s)", ErrExpired, c.Expiry.Format(time.RFC3339), now.UTC().Format(time.RFC3339), leeway)
	}
	if !c.NotBefore.IsZero() && now.Add(leeway).Before(c.NotBefore) {
		return Claims{}, fmt.Errorf("%w: nbf %s (now %s, leeway %s)", ErrNotYetValid, c.NotBefore.Format(time.RFC3339), now.UTC().Format(time.RFC3339), leeway)
	}
	if !c.IssuedAt.IsZero() && now.Add(leeway).Before(c.IssuedAt) {
		return Claims{}, fmt.Errorf("%w: iat %s is in the future (now %s, leeway %s)", ErrNotYetValid, c.IssuedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339), leeway)
	}
	return c, nil
}
