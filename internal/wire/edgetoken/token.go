package edgetoken

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Audiences of the two kinds of tokens.
const (
	// AudienceEnrollment is the aud of an enrollment token (fixed by the spec).
	AudienceEnrollment = "edge-enrollment"
	// AudienceNode is the aud of a NodeSecurityToken. The spec does not name one; Keel
	// sets it so that an enrollment token can never pass as a node token and back.
	AudienceNode = "edge-node"
)

// Algorithm is the only JWS "alg" signed and accepted.
const Algorithm = "EdDSA"

// MaxTokenSize is the longest token Parse and Validate look at, in bytes.
const MaxTokenSize = 8 << 10

// maxNumericDate is 9999-12-31T23:59:59Z, the latest date accepted in a claim.
const maxNumericDate = 253402300799

// Sentinel errors; every error of this package wraps one of them (test with errors.Is).
var (
	// ErrMalformed: the token does not parse (encoding, JSON, claim types, size) or lacks exp.
	ErrMalformed = errors.New("edgetoken: malformed token")
	// ErrAlgorithm: alg is not EdDSA, or the header has critical parameters.
	ErrAlgorithm = errors.New("edgetoken: algorithm refused")
	// ErrSignature: the signature does not verify under the issuer's key.
	ErrSignature = errors.New("edgetoken: bad signature")
	// ErrExpired: the token is past its exp (plus leeway).
	ErrExpired = errors.New("edgetoken: token expired")
	// ErrNotYetValid: nbf or iat is in the future (beyond leeway).
	ErrNotYetValid = errors.New("edgetoken: token not yet valid")
	// ErrAudience: aud is not the one expected.
	ErrAudience = errors.New("edgetoken: wrong audience")
	// ErrIssuer: the issuer (and key id) has no configured key.
	ErrIssuer = errors.New("edgetoken: unknown issuer")
)

// Header is the JOSE header of a token.
type Header struct {
	// Alg is the signature algorithm; only "EdDSA" validates.
	Alg string
	// Typ is the media type, "JWT" for tokens made by Sign; not checked.
	Typ string
	// Kid names the issuer's key.
	Kid string
	// Crit lists critical extension parameters; Validate refuses any.
	Crit []string
}

// Claims are the JWT claims Keel uses. Empty strings and zero times are absent claims.
type Claims struct {
	Issuer       string    // iss
	Subject      string    // sub: label (enrollment) or node id (node token)
	Audience     string    // aud: a string; a one-element array is accepted when parsing
	Tenant       string    // tid
	ID           string    // jti
	Role         string    // role: "edge" in node tokens
	Confirmation string    // cnf.jkt: RFC 7638 thumbprint of the bound key (see Thumbprint)
	IssuedAt     time.Time // iat
	NotBefore    time.Time // nbf
	Expiry       time.Time // exp
}

// BoundTo reports whether c's confirmation claim is the thumbprint of pub (constant
// time). A token without cnf is bound to nothing.
func (c Claims) BoundTo(pub ed25519.PublicKey) bool {
	return c.Confirmation != "" && subtle.ConstantTimeCompare([]byte(c.Confirmation), []byte(Thumbprint(pub))) == 1
}

// Thumbprint is the RFC 7638 JWK SHA-256 thumbprint of an Ed25519 public key, the JWK
// being {"crv":"Ed25519","kty":"OKP","x":<base64url key>} (RFC 8037), encoded base64url
// without padding: the value of cnf.jkt. Key lengths are the caller's to check; a key of
// the wrong length still hashes to a (useless, non-empty) value.
func Thumbprint(pub ed25519.PublicKey) string {
	jwk := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(jwk))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

type wireHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid,omitempty"`
}

type wireConfirmation struct {
	JKT string `json:"jkt"`
}

type wireClaims struct {
	Iss  string            `json:"iss,omitempty"`
	Sub  string            `json:"sub,omitempty"`
	Aud  string            `json:"aud,omitempty"`
	Tid  string            `json:"tid,omitempty"`
	Jti  string            `json:"jti,omitempty"`
	Role string            `json:"role,omitempty"`
	Cnf  *wireConfirmation `json:"cnf,omitempty"`
	Iat  *int64            `json:"iat,omitempty"`
	Nbf  *int64            `json:"nbf,omitempty"`
	Exp  *int64            `json:"exp,omitempty"`
}

// Sign returns the compact JWS of c: header {"alg":"EdDSA","typ":"JWT","kid":kid} (kid
// omitted when empty), times as NumericDate seconds (sub-second parts dropped).
func Sign(key ed25519.PrivateKey, kid string, c Claims) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("edgetoken: sign: private key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	w := wireClaims{Iss: c.Issuer, Sub: c.Subject, Aud: c.Audience, Tid: c.Tenant, Jti: c.ID, Role: c.Role}
	if c.Confirmation != "" {
		w.Cnf = &wireConfirmation{JKT: c.Confirmation}
	}
	for _, f := range []struct {
		name string
		t    time.Time
		dst  **int64
	}{{"iat", c.IssuedAt, &w.Iat}, {"nbf", c.NotBefore, &w.Nbf}, {"exp", c.Expiry, &w.Exp}} {
		if f.t.IsZero() {
			continue
		}
		s := f.t.Unix()
		if s < 0 || s > maxNumericDate {
			return "", fmt.Errorf("edgetoken: sign: %s %v out of range", f.name, f.t)
		}
		*f.dst = &s
	}
	hb, err := json.Marshal(wireHeader{Alg: Algorithm, Typ: "JWT", Kid: kid})
	if err != nil {
		return "", fmt.Errorf("edgetoken: sign: header: %w", err)
	}
	cb, err := json.Marshal(w)
	if err != nil {
		return "", fmt.Errorf("edgetoken: sign: claims: %w", err)
	}
	return signParts(key, hb, cb), nil
}

// signParts returns base64url(header) "." base64url(payload) "." base64url(signature).
func signParts(key ed25519.PrivateKey, header, payload []byte) string {
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	return input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(input)))
}

// parsed is a token taken apart, before any check of its meaning.
type parsed struct {
	header  Header
	hasCrit bool
	claims  Claims
	input   string // signing input: the first two parts
	sig     []byte
}

// Parse decodes a token without checking its signature or claims' values: only for
// looking at an untrusted token (logging, picking a key). Errors wrap ErrMalformed.
func Parse(token string) (Header, Claims, error) {
	p, err := parse(token)
	if err != nil {
		return Header{}, Claims{}, err
	}
	return p.header, p.claims, nil
}

func parse(token string) (parsed, error) {
	if len(token) > MaxTokenSize {
		return parsed{}, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(token), MaxTokenSize)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return parsed{}, fmt.Errorf("%w: %d dot-separated parts, want 3", ErrMalformed, len(parts))
	}
	hb, err := decodePart(parts[0], "header")
	if err != nil {
		return parsed{}, err
	}
	cb, err := decodePart(parts[1], "claims")
	if err != nil {
		return parsed{}, err
	}
	sig, err := decodePart(parts[2], "signature")
	if err != nil {
		return parsed{}, err
	}
	p := parsed{input: token[:len(parts[0])+1+len(parts[1])], sig: sig}
	if p.header, p.hasCrit, err = parseHeader(hb); err != nil {
		return parsed{}, err
	}
	if p.claims, err = parseClaims(cb); err != nil {
		return parsed{}, err
	}
	return p, nil
}

// decodePart decodes strict base64url without padding; line breaks, which the standard
// decoder would skip, are refused too.
func decodePart(s, what string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("%w: %s: byte %#02x at offset %d is not base64url (no padding)", ErrMalformed, what, c, i)
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
	}
	return b, nil
}

func parseHeader(b []byte) (Header, bool, error) {
	m, err := decodeObject(b, "header")
	if err != nil {
		return Header{}, false, err
	}
	var h Header
	for _, f := range []struct {
		name string
		dst  *string
	}{{"alg", &h.Alg}, {"typ", &h.Typ}, {"kid", &h.Kid}} {
		if err := member(m, "header", f.name, f.dst); err != nil {
			return Header{}, false, err
		}
	}
	_, hasCrit := m["crit"]
	if err := member(m, "header", "crit", &h.Crit); err != nil {
		return Header{}, false, err
	}
	return h, hasCrit, nil
}

func parseClaims(b []byte) (Claims, error) {
	m, err := decodeObject(b, "claims")
	if err != nil {
		return Claims{}, err
	}
	var c Claims
	for _, f := range []struct {
		name string
		dst  *string
	}{{"iss", &c.Issuer}, {"sub", &c.Subject}, {"tid", &c.Tenant}, {"jti", &c.ID}, {"role", &c.Role}} {
		if err := member(m, "claims", f.name, f.dst); err != nil {
			return Claims{}, err
		}
	}
	if c.Audience, err = audience(m["aud"]); err != nil {
		return Claims{}, err
	}
	if raw, ok := m["cnf"]; ok {
		cnf, err := decodeObject(raw, "claim cnf")
		if err != nil {
			return Claims{}, err
		}
		if err := member(cnf, "claim cnf", "jkt", &c.Confirmation); err != nil {
			return Claims{}, err
		}
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"iat", &c.IssuedAt}, {"nbf", &c.NotBefore}, {"exp", &c.Expiry}} {
		if *f.dst, err = numericDate(m, f.name); err != nil {
			return Claims{}, err
		}
	}
	return c, nil
}

// member decodes m[name], when present, into dst; null and wrong types are refused.
func member(m map[string]json.RawMessage, what, name string, dst any) error {
	raw, ok := m[name]
	if !ok {
		return nil
	}
	if string(raw) == "null" {
		return fmt.Errorf("%w: %s: %q is null", ErrMalformed, what, name)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%w: %s: %q: %w", ErrMalformed, what, name, err)
	}
	return nil
}

// audience decodes aud: a string, or an array of exactly one string.
func audience(raw json.RawMessage) (string, error) {
	if raw == nil {
		return "", nil
	}
	if string(raw) == "null" {
		return "", fmt.Errorf("%w: claims: \"aud\" is null", ErrMalformed)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var a []string
	if err := json.Unmarshal(raw, &a); err != nil || a == nil {
		return "", fmt.Errorf("%w: claims: \"aud\" is neither a string nor an array of strings", ErrMalformed)
	}
	if len(a) != 1 {
		return "", fmt.Errorf("%w: claims: \"aud\" has %d values, want 1", ErrMalformed, len(a))
	}
	return a[0], nil
}

// numericDate decodes m[name], when present, as a NumericDate: a JSON number of seconds
// since 1970 (a fraction is dropped) up to the year 9999.
func numericDate(m map[string]json.RawMessage, name string) (time.Time, error) {
	raw, ok := m[name]
	if !ok {
		return time.Time{}, nil
	}
	var n json.Number
	if len(raw) == 0 || raw[0] == '"' || json.Unmarshal(raw, &n) != nil || n == "" {
		return time.Time{}, fmt.Errorf("%w: claims: %q is not a number", ErrMalformed, name)
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("%w: claims: %q = %s is not a date between 1970 and 9999", ErrMalformed, name, n)
	}
	return time.Unix(int64(f), 0).UTC(), nil
}
