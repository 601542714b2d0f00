package relay

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/keel-relay/keel/internal/connlimit"
	"github.com/keel-relay/keel/internal/fsutil"
	"github.com/keel-relay/keel/internal/wire/keyhash"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/nodecerts"
)

// cfenginePassphrase is what CFEngine encrypts its keys with: Rudder agents' localhost.priv
// may be a legacy encrypted PEM (Proc-Type: 4,ENCRYPTED) under it (SPEC-relay-api.md).
const cfenginePassphrase = "Cfengine passphrase"

// maxKeyPairFile bounds what is read of http.tls_cert and http.tls_key.
const maxKeyPairFile = 1 << 20

// buildTLSFront reads the node client certificates (tls.node_certs) and the relay API
// listener's key pair.
func (s *Server) buildTLSFront(cfg *config.Config) (err error) {
	s.nodeCerts = nodecerts.NewHolder(cfg.TLS.NodeCerts, s.log.With("component", "node-certs"))
	s.tls, err = newAPITLS(cfg, s.nodeCerts, s.log)
	return err
}

// apiTLS is the relay API listener's TLS (SPEC-relay-box.md "Transport"): the key pair of
// http.tls_cert / http.tls_key, the key the nodes pinned (by default the Rudder agent's),
// re-read on reload (a pair that does not load leaves the one in force), and the node client
// certificates, asked for but optional, accepted only when in tls.node_certs. Without
// http.tls_cert the listener speaks plain HTTP and Config is nil.
type apiTLS struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
	nodeCerts         *nodecerts.Holder
}

// newAPITLS loads the key pair of cfg's http section, if any, and logs the key's pin (what
// the nodes must have pinned).
func newAPITLS(cfg *config.Config, nodeCerts *nodecerts.Holder, log *slog.Logger) (*apiTLS, error) {
	t := &apiTLS{certFile: cfg.HTTP.TLSCert, keyFile: cfg.HTTP.TLSKey, nodeCerts: nodeCerts}
	if t.certFile == "" {
		return t, nil
	}
	cert, err := loadKeyPair(t.certFile, t.keyFile)
	if err != nil {
		return nil, fmt.Errorf("http.tls_cert/tls_key: %w", err)
	}
	t.cert.Store(&cert)
	log.Info("relay API speaks TLS", "cert", t.certFile, "key_pin", keyhash.OfSPKI(cert.Leaf.RawSubjectPublicKeyInfo).String())
	return t, nil
}

// Reload re-reads the node certificates and the key pair; what does not load leaves what is
// in force.
func (t *apiTLS) Reload() error {
	var errs []error
	if err := t.nodeCerts.Reload(); err != nil {
		errs = append(errs, fmt.Errorf("tls.node_certs not reloaded (the certificates in force stay): %w", err))
	}
	if t.certFile != "" {
		if cert, err := loadKeyPair(t.certFile, t.keyFile); err != nil {
			errs = append(errs, fmt.Errorf("http.tls_cert/tls_key not reloaded (the key pair in force stays): %w", err))
		} else {
			t.cert.Store(&cert)
		}
	}
	return errors.Join(errs...)
}

// Config returns the listener's TLS settings, nil for plain HTTP: the key pair in force,
// TLS 1.3 offered and preferred, TLS 1.2 still accepted (Windows agents before Windows
// Server 2022 and older TLS stacks of Rudder's tools have no TLS 1.3), HTTP/1.1, and a
// client certificate asked for: none is fine, one not in tls.node_certs fails the handshake.
func (t *apiTLS) Config() *tls.Config {
	if t.certFile == "" {
		return nil
	}
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.cert.Load(), nil
		},
	}
	t.nodeCerts.ConfigureTLS(c)
	return c
}

// loadKeyPair reads a certificate (chain) and its private key: PEM "RSA PRIVATE KEY"
// (PKCS#1, as Rudder agents keep localhost.priv, plain or encrypted under CFEngine's
// passphrase), "PRIVATE KEY" (PKCS#8) or "EC PRIVATE KEY". The key must match the leaf.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := readBounded(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readBounded(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	if keyPEM, err = decryptLegacyKey(keyPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", keyFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s and %s: %w", certFile, keyFile, err)
	}
	return cert, nil // Leaf is set by X509KeyPair
}

// decryptLegacyKey returns keyPEM with its first "RSA PRIVATE KEY" block decrypted when it
// is a legacy encrypted PEM (as CFEngine writes its keys); other keys come back as they are.
func decryptLegacyKey(keyPEM []byte) ([]byte, error) {
	rest := keyPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return keyPEM, nil
		}
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			continue
		}
		if block.Type != "RSA PRIVATE KEY" || !strings.HasPrefix(block.Headers["Proc-Type"], "4,ENCRYPTED") {
			return keyPEM, nil
		}
		// The legacy OpenSSL encryption is deprecated for new uses; reading CFEngine's keys is
		// the compatibility it is kept for.
		//lint:ignore SA1019 CFEngine keys use this format
		der, err := x509.DecryptPEMBlock(block, []byte(cfenginePassphrase))
		if err != nil {
			return nil, fmt.Errorf("decrypting the key (DEK-Info %s) with CFEngine's passphrase: %w", block.Headers["DEK-Info"], err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}), nil
	}
}

// readBounded reads a file of at most maxKeyPairFile bytes, not empty.
func readBounded(path string) ([]byte, error) {
	b, err := fsutil.ReadFileMax(path, maxKeyPairFile)
	if err == nil && len(b) == 0 {
		err = fmt.Errorf("%s: empty file", path)
	}
	return b, err
}

// maxLocalConns bounds the connections of http.local_listen, the plain listener of the tools
// on the box (a few at a time), whatever http.max_connections allows the main listener.
const maxLocalConns = 64

// listeners is one net.Listener over several: Accept returns the next connection of any of
// them, Close closes them all, Addr is the first one's. The relay API serves http.listen and
// http.local_listen through it with one http.Server, so that one drain covers both.
type listeners struct {
	lns   []net.Listener
	conns chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
}

// mergeListeners accepts on every listener of lns, each in its own goroutine, until Close.
func mergeListeners(lns ...net.Listener) net.Listener {
	m := &listeners{lns: lns, conns: make(chan net.Conn), errs: make(chan error), done: make(chan struct{})}
	for _, ln := range lns {
		go m.accept(ln)
	}
	return m
}

// accept hands ln's connections and errors to Accept (http.Server pauses and retries after a
// temporary one, and stops on any other), until ln or m is closed.
func (m *listeners) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case m.errs <- err:
			case <-m.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		select {
		case m.conns <- c:
		case <-m.done:
			_ = c.Close()
			return
		}
	}
}

// Accept returns the next connection of any listener.
func (m *listeners) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case err := <-m.errs:
		return nil, err
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// Close closes every listener.
func (m *listeners) Close() error {
	var errs []error
	m.once.Do(func() {
		close(m.done)
		for _, ln := range m.lns {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// Addr is the first listener's address (http.listen).
func (m *listeners) Addr() net.Addr { return m.lns[0].Addr() }

// listenLocal opens http.local_listen, plain HTTP, bounded to maxLocalConns connections
// (and to no more than the main listener's bound), with the same idle-connection reclaim.
func listenLocal(addr string, maxConns int, idle *connlimit.IdleHTTP) (net.Listener, error) {
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.local_listen: %w", err)
	}
	capped := connlimit.New(raw, min(maxLocalConns, maxConns))
	capped.SetReclaim(func() { idle.CloseIdle() })
	return capped, nil
}
