// Package edkey reads and writes Ed25519 keys as PEM: a private key is one "PRIVATE KEY"
// block holding PKCS#8, a public key one "PUBLIC KEY" block holding PKIX (the forms
// `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write). Parsing is strict:
// exactly one block, no PEM headers (encrypted keys are not supported), nothing but white
// space before or after it, at most MaxPEM bytes. The relay's edge signing key (edge/keys)
// and the agent's edge key (agent/edged) both use it.
package edkey

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// PEM block types.
const (
	PrivateType = "PRIVATE KEY"
	PublicType  = "PUBLIC KEY"
)

// MaxPEM bounds what a key's PEM text may hold (a key is about 120 bytes).
const MaxPEM = 16 << 10

// Generate returns a new Ed25519 private key.
func Generate() (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate Ed25519 key: %w", err)
	}
	return k, nil
}

// MarshalPrivate encodes key as a PEM "PRIVATE KEY" block (PKCS#8).
func MarshalPrivate(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode Ed25519 private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PrivateType, Bytes: der}), nil
}

// MarshalPublic encodes pub as a PEM "PUBLIC KEY" block (PKIX).
func MarshalPublic(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode Ed25519 public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PublicType, Bytes: der}), nil
}

// ParsePrivate decodes b, which must be exactly one PEM "PRIVATE KEY" block holding a
// PKCS#8 Ed25519 key.
func ParsePrivate(b []byte) (ed25519.PrivateKey, error) {
	der, err := onePEM(b, PrivateType)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#8 private key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
	}
	return key, nil
}

// ParsePublic decodes b, which must be exactly one PEM "PUBLIC KEY" block holding a PKIX
// Ed25519 key.
func ParsePublic(b []byte) (ed25519.PublicKey, error) {
	der, err := onePEM(b, PublicType)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a PKIX public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
	}
	return pub, nil
}

// onePEM returns the bytes of the single PEM block of type want that b holds; anything else
// (too long, no block, text before or after it, another type, headers, a second block) is an
// error.
func onePEM(b []byte, want string) ([]byte, error) {
	if len(b) > MaxPEM {
		return nil, fmt.Errorf("key is %d bytes, more than %d", len(b), MaxPEM)
	}
	block, rest := pem.Decode(b)
	switch {
	case block == nil:
		return nil, fmt.Errorf("no PEM %q block", want)
	case block.Type != want:
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, want)
	case len(block.Headers) != 0:
		return nil, errors.New("PEM block has headers (an encrypted key? not supported)")
	case !isSpace(rest):
		if next, _ := pem.Decode(rest); next != nil {
			return nil, errors.New("more than one PEM block (trailing data after the PEM block)")
		}
		return nil, errors.New("trailing data after the PEM block")
	}
	// pem.Decode skips any text before the block (even a malformed block): refuse it too.
	// The decoded block's BEGIN line is the last one before the end of what it consumed
	// (neither its base64 body nor its END line holds one).
	consumed := b[:len(b)-len(rest)]
	if start := bytes.LastIndex(consumed, []byte("-----BEGIN ")); start < 0 || !isSpace(b[:start]) {
		return nil, errors.New("data before the PEM block")
	}
	return block.Bytes, nil
}

// isSpace reports whether b holds only spaces, tabs and line ends.
func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}
