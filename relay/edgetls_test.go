package relay_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/keel-relay/keel/relay/relaytest"
)

// edgePair is a self-signed certificate for 127.0.0.1 (named name) with its key, as PEM.
type edgePair struct {
	certPEM, keyPEM []byte
	pool            *x509.CertPool
}

func newEdgePair(t *testing.T, name string) edgePair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return edgePair{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		pool:    pool,
	}
}

// edgeServerName connects a new gRPC TLS client trusting pool to addr, checks the health
// service over it and returns the common name of the certificate the server showed.
func edgeServerName(t *testing.T, addr string, pool *x509.CertPool) (string, error) {
	t.Helper()
	var seen string
	conf := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", VerifyConnection: func(cs tls.ConnectionState) error {
		seen = cs.PeerCertificates[0].Subject.CommonName
		return nil
	}}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err == nil && h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v", h.Status)
	}
	return seen, err
}

// TestEdgeTLSReload: a reload re-reads edge.tls.cert_file/key_file, and a new gRPC TLS client
// sees the new certificate; a pair that does not load leaves the one in force and the reload
// says why.
func TestEdgeTLSReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, second := newEdgePair(t, "edge-first"), newEdgePair(t, "edge-second")
	certFile, keyFile := filepath.Join(dir, "edge.crt"), filepath.Join(dir, "edge.key")
	relaytest.WriteFileAtomic(t, certFile, first.certPEM)
	relaytest.WriteFileAtomic(t, keyFile, first.keyPEM)
	cfg := relaytest.Config(t, dir, "root", relaytest.NodeMap(relaytest.NewNode("root", "root", 0)))
	cfg.Edge.Enabled, cfg.Edge.Listen = true, "127.0.0.1:0"
	cfg.Edge.TLS.CertFile, cfg.Edge.TLS.KeyFile = certFile, keyFile
	r := relaytest.Start(t, cfg)
	addr := r.EdgeAddr().String()

	if name, err := edgeServerName(t, addr, first.pool); err != nil || name != "edge-first" {
		t.Fatalf("before the reload: %q, %v", name, err)
	}

	relaytest.WriteFileAtomic(t, certFile, second.certPEM)
	relaytest.WriteFileAtomic(t, keyFile, second.keyPEM)
	if err := r.Reload(); err != nil {
		t.Fatalf("reload with a new pair: %v", err)
	}
	if name, err := edgeServerName(t, addr, second.pool); err != nil || name != "edge-second" {
		t.Fatalf("after the reload: %q, %v; want the new certificate", name, err)
	}
	if _, err := edgeServerName(t, addr, first.pool); err == nil {
		t.Error("after the reload, a client trusting only the old certificate still connects")
	}

	// A key that does not match the certificate: refused, the pair in force stays.
	relaytest.WriteFileAtomic(t, keyFile, first.keyPEM)
	err := r.Reload()
	if err == nil || !strings.Contains(err.Error(), "edge.tls.cert_file/key_file not reloaded (the key pair in force stays)") {
		t.Fatalf("reload with a mismatched pair: %v", err)
	}
	if name, err := edgeServerName(t, addr, second.pool); err != nil || name != "edge-second" {
		t.Fatalf("after a refused reload: %q, %v; want the pair in force", name, err)
	}
}
