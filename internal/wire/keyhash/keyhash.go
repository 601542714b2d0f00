// Package keyhash parses the node key pins of the node map ("key-hash") and
// checks public keys against them.
//
// A pin is a hash of a public key's SubjectPublicKeyInfo (PKIX) DER, written
// "sha256:<hex>" or "sha512:<hex>" (Rudder 6) or "sha256//<base64>" or
// "sha512//<base64>" (Rudder 7 and later, padded standard base64).
package keyhash

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Pin is a hash of a public key's SubjectPublicKeyInfo DER.
type Pin struct {
	// Hash is crypto.SHA256 or crypto.SHA512.
	Hash crypto.Hash
	// Sum is the hash value, Hash.Size() bytes.
	Sum []byte
}

// Parse parses a pin in one of the forms "sha256:<hex>", "sha512:<hex>" (hex digits of
// either case), "sha256//<base64>" or "sha512//<base64>" (standard base64, padded with "="
// as Rudder writes it, canonical), of the hash's length. It is the one rule of a key hash,
// in the node map as in keel-relay's configuration (forward.tls.key_hash).
func Parse(s string) (Pin, error) {
	i := strings.IndexAny(s, ":/")
	if i < 0 {
		return Pin{}, fmt.Errorf("invalid key hash %q: want sha256:<hex>, sha512:<hex>, sha256//<base64> or sha512//<base64>", s)
	}
	algo, rest := s[:i], s[i+1:]
	b64 := s[i] == '/'
	if b64 {
		var ok bool
		if rest, ok = strings.CutPrefix(rest, "/"); !ok {
			return Pin{}, fmt.Errorf("invalid key hash %q: want sha256:<hex>, sha512:<hex>, sha256//<base64> or sha512//<base64>", s)
		}
	}
	var h crypto.Hash
	switch algo {
	case "sha256":
		h = crypto.SHA256
	case "sha512":
		h = crypto.SHA512
	default:
		return Pin{}, fmt.Errorf("invalid key hash %q: unknown algorithm %q (want sha256 or sha512)", s, algo)
	}
	if rest == "" {
		return Pin{}, fmt.Errorf("invalid key hash %q: no hash value", s)
	}
	var sum []byte
	var err error
	if b64 {
		if strings.ContainsAny(rest, "\r\n") { // which the base64 decoder would skip
			return Pin{}, fmt.Errorf("invalid key hash %q: the base64 value has a line break", s)
		}
		sum, err = base64.StdEncoding.Strict().DecodeString(rest)
		if _, rawErr := base64.RawStdEncoding.Strict().DecodeString(rest); err != nil && rawErr == nil {
			return Pin{}, fmt.Errorf("invalid key hash %q: the base64 value must be padded with \"=\" (as Rudder writes it)", s)
		}
	} else {
		sum, err = hex.DecodeString(rest)
	}
	if err != nil {
		return Pin{}, fmt.Errorf("invalid key hash %q: %w", s, err)
	}
	if len(sum) != h.Size() {
		return Pin{}, fmt.Errorf("invalid key hash %q: %d bytes, want %d for %s", s, len(sum), h.Size(), algo)
	}
	return Pin{Hash: h, Sum: sum}, nil
}

// OfSPKI returns the SHA-256 pin of der, a SubjectPublicKeyInfo DER: the pin Rudder writes
// in the node map ("sha256//<base64>" by String).
func OfSPKI(der []byte) Pin {
	sum := sha256.Sum256(der)
	return Pin{Hash: crypto.SHA256, Sum: sum[:]}
}

// Of returns the SHA-256 pin of pub (an *rsa.PublicKey, ed25519.PublicKey or any key
// x509.MarshalPKIXPublicKey takes).
func Of(pub crypto.PublicKey) (Pin, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return Pin{}, fmt.Errorf("key hash: %w", err)
	}
	return OfSPKI(der), nil
}

// MatchSPKI reports whether der, a SubjectPublicKeyInfo DER, hashes to p.
// The comparison takes constant time. A zero Pin matches nothing.
func (p Pin) MatchSPKI(der []byte) bool {
	var sum []byte
	switch p.Hash {
	case crypto.SHA256:
		s := sha256.Sum256(der)
		sum = s[:]
	case crypto.SHA512:
		s := sha512.Sum512(der)
		sum = s[:]
	default:
		return false
	}
	return len(p.Sum) == len(sum) && subtle.ConstantTimeCompare(p.Sum, sum) == 1
}

// MatchRSA reports whether the SubjectPublicKeyInfo DER of pub hashes to p.
func (p Pin) MatchRSA(pub *rsa.PublicKey) bool {
	if pub == nil || pub.N == nil {
		return false
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return false
	}
	return p.MatchSPKI(der)
}

// String returns the pin in the "sha256//<base64>" (or "sha512//") form.
func (p Pin) String() string {
	var algo string
	switch p.Hash {
	case crypto.SHA256:
		algo = "sha256"
	case crypto.SHA512:
		algo = "sha512"
	default:
		algo = p.Hash.String()
	}
	return algo + "//" + base64.StdEncoding.EncodeToString(p.Sum)
}
