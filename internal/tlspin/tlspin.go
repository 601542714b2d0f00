// Package tlspin builds the TLS client settings Keel uses to verify a peer over https: a
// CA bundle read from a PEM file, or a pinned certificate key (package keyhash) that
// replaces chain verification, the way Rudder relays trust each other's self-signed
// certificates. The agent's shared-files client and the relay's next hops use it.
package tlspin

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/keel-relay/keel/internal/fsutil"
	"github.com/keel-relay/keel/internal/wire/keyhash"
)

// MaxCAFile bounds what a CA bundle file may hold.
const MaxCAFile = 1 << 20

// ClientConfig returns TLS settings (TLS 1.2 or newer) for a client. With keyHash, the
// peer's leaf certificate key must match that pin and the chain is not verified; else
// with caFile, the chain must lead to a certificate of that PEM bundle; else to the
// system's roots. A caFile given with keyHash is still read and must hold a certificate.
func ClientConfig(caFile, keyHash string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := LoadCAFile(caFile)
		if err != nil {
			return nil, err
		}
		conf.RootCAs = pool
	}
	if keyHash != "" {
		pin, err := keyhash.Parse(keyHash)
		if err != nil {
			return nil, fmt.Errorf("key hash: %w", err)
		}
		pinTo(conf, pin)
	}
	return conf, nil
}

// PinnedConfig returns TLS settings (TLS 1.2 or newer) that accept exactly the peers whose
// leaf certificate key matches pin.
func PinnedConfig(pin keyhash.Pin) *tls.Config {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	pinTo(conf, pin)
	return conf
}

// pinTo makes conf accept exactly the peers whose leaf certificate key matches pin: the pin
// check replaces chain and name verification.
func pinTo(conf *tls.Config, pin keyhash.Pin) {
	conf.InsecureSkipVerify = true // replaced by the pin check below
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer sent no certificate")
		}
		if !pin.MatchSPKI(cs.PeerCertificates[0].RawSubjectPublicKeyInfo) {
			return fmt.Errorf("peer certificate key does not match the pinned key hash %s", pin)
		}
		return nil
	}
}

// LoadCAFile reads a PEM bundle of CA certificates (at most MaxCAFile bytes) into a pool;
// a file holding no certificate is an error.
func LoadCAFile(path string) (*x509.CertPool, error) {
	b, err := fsutil.ReadFileMax(path, MaxCAFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", path)
	}
	return pool, nil
}
