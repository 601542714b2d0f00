//go:build unix

package edged_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/agent/edged"
	"github.com/keel-relay/keel/edge/server"
)

// testCA writes a CA and a server certificate for 127.0.0.1 signed by it; it returns the
// CA file, the certificate and key files.
func testCA(t *testing.T, dir, name string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "relay"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(srvKey)
	caFile, certFile, keyFile = filepath.Join(dir, name+"-ca.pem"), filepath.Join(dir, name+"-cert.pem"), filepath.Join(dir, name+"-key.pem")
	for f, b := range map[string]*pem.Block{caFile: {Type: "CERTIFICATE", Bytes: caDER}, certFile: {Type: "CERTIFICATE", Bytes: srvDER}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// TestEdgeTLS: with edge.ca_file the daemon verifies the relay's certificate: the right CA
// enrolls and connects; another CA, or plaintext against a TLS listener, does not.
func TestEdgeTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := testCA(t, dir, "relay")
	otherCA, _, _ := testCA(t, dir, "other")
	r := startRelayWith(t, func(o *server.Options) { o.TLSCertFile, o.TLSKeyFile = certFile, keyFile })
	rec := newRecorder()

	cfg := agentConfig(t, r, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct{ name, ca, want string }{
		{"plaintext to a TLS listener", "", "AttestNode"},
		{"another CA", otherCA, "certificate"},
	} {
		cfg.Edge.CAFile = tc.ca
		_, err := edged.Enroll(ctx, cfg, edged.EnrollRequest{Relay: r.addr, Token: r.enrollToken()}, rec.logger())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	cfg.Edge.CAFile = caFile
	enroll(t, r, cfg, rec.logger())
	runAgent(t, cfg, fastOptions(), rec.logger())
	waitFor(t, "the TLS stream", func() bool { return r.srv.Connected(cfg.NodeID) })
	if out, res := invoke(t, r, cfg.NodeID, "ssh", nil); out != "" || res.GetErr().GetCode() != edged.CodeUnknownTool {
		t.Errorf("invoke over TLS: %q %v", out, res)
	}
}
