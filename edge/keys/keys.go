// Package keys keeps the relay's edge signing key — an Ed25519 key in a PEM PKCS#8 file
// (mode 0600) created on first use — and reads the PEM public keys of trusted upstream
// enrollment-token issuers. The PEM forms and their strict parsing are package edkey's.
package keys

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"

	"github.com/keel-relay/keel/internal/edkey"
	"github.com/keel-relay/keel/internal/fsutil"
	"github.com/keel-relay/keel/internal/secretfile"
)

// FileName is the signing key's file name inside the relay's data directory. It lives
// beside the database, not in it, so `keel-relay edge enroll-token` can read it while the
// relay holds the database lock.
const FileName = "edge-signing.key"

// maxFile bounds what is read from a key file.
const maxFile = 64 << 10

// Issuer returns the JWT issuer of the relay with the given node id.
func Issuer(relayNodeID string) string { return "keel-relay:" + relayNodeID }

// LoadOrCreate reads the Ed25519 private key at path, or creates it (mode 0600, directory
// 0750) when the file does not exist. Two processes creating it at once end up with the same
// key: the file is written under a temporary name and linked into place, and the loser of the
// race reads the winner's key. A key file readable by group or others is refused (Unix).
func LoadOrCreate(path string) (ed25519.PrivateKey, error) {
	key, err := Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	priv, err := edkey.Generate()
	if err != nil {
		return nil, fmt.Errorf("edge signing key: %w", err)
	}
	pemBytes, err := edkey.MarshalPrivate(priv)
	if err != nil {
		return nil, fmt.Errorf("edge signing key: %w", err)
	}
	created, err := secretfile.Create(path, pemBytes)
	if err != nil {
		return nil, fmt.Errorf("edge signing key: %w", err)
	}
	if !created {
		return Load(path) // another process created it first
	}
	return priv, nil
}

// ReadFile returns the PEM bytes of the signing key file at path after checking that they
// hold an Ed25519 key (for a backup to copy), or an error wrapping fs.ErrNotExist.
func ReadFile(path string) ([]byte, error) {
	b, _, err := readKey(path)
	return b, err
}

// readKey reads and parses the signing key file at path (refused when group or others may
// read it, Unix).
func readKey(path string) ([]byte, ed25519.PrivateKey, error) {
	b, err := secretfile.Read(path, maxFile)
	if err != nil {
		return nil, nil, fmt.Errorf("edge signing key: %w", err)
	}
	key, err := edkey.ParsePrivate(b)
	if err != nil {
		return nil, nil, fmt.Errorf("edge signing key %s: %w", path, err)
	}
	return b, key, nil
}

// Install writes pemBytes, an Ed25519 private key as Load reads it, to path (mode 0600,
// replaced atomically), unless the file already holds exactly those bytes. It reports whether
// it replaced a different key. It is how a restore puts back the key of the backed-up relay.
func Install(path string, pemBytes []byte) (replaced bool, err error) {
	if _, err := edkey.ParsePrivate(pemBytes); err != nil {
		return false, fmt.Errorf("edge signing key to install: %w", err)
	}
	cur, err := secretfile.Read(path, maxFile)
	existed := !errors.Is(err, fs.ErrNotExist) // a file is there, even if unreadable or open to others
	if err == nil && string(cur) == string(pemBytes) {
		return false, nil
	}
	if err := secretfile.Replace(path, pemBytes); err != nil {
		return false, fmt.Errorf("edge signing key: %w", err)
	}
	return existed, nil
}

// Load reads the Ed25519 private key at path (PEM "PRIVATE KEY", PKCS#8). A file readable by
// group or others is refused (Unix).
func Load(path string) (ed25519.PrivateKey, error) {
	_, key, err := readKey(path)
	return key, err
}

// LoadPublicKey reads an Ed25519 public key file (PEM "PUBLIC KEY", PKIX).
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := fsutil.ReadFileMax(path, maxFile)
	if err != nil {
		return nil, err
	}
	key, err := edkey.ParsePublic(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}
