// Package nodecertstest makes node client certificates for tests: self-signed, with the
// subject "UID=<node id>, CN=<hostname>" as Rudder agents make theirs.
package nodecertstest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// oidUID is the UID attribute (0.9.2342.19200300.100.1.1) that names the node.
var oidUID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}

// Issue makes a self-signed client certificate for node nodeID on host hostname, valid from
// an hour ago for ten years, with a fresh ECDSA P-256 key (Rudder agents use RSA; the key type
// does not matter to the relay, and P-256 keys are made in no time). It returns the
// certificate, and it and its key in PEM (the key as "PRIVATE KEY", PKCS #8).
func Issue(t testing.TB, nodeID, hostname string) (cert *x509.Certificate, certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("node certificate key: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("node certificate serial: %v", err)
	}
	subject := pkix.Name{
		CommonName: hostname,
		ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidUID, Value: nodeID}},
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		Issuer:                subject,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("node certificate: %v", err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("node certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("node certificate key: %v", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return cert, certPEM, keyPEM
}

// Bundle concatenates PEM certificates into a bundle as Rudder's nodescerts.pem, each ending
// in a newline.
func Bundle(certs ...[]byte) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		b.Write(c)
		if len(c) > 0 && c[len(c)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// TLSCertificate is certPEM and keyPEM (from Issue) as a TLS client presents them
// (tls.Config.Certificates).
func TLSCertificate(t testing.TB, certPEM, keyPEM []byte) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("node certificate key pair: %v", err)
	}
	return c
}
