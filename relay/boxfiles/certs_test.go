package boxfiles_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"
)

// oidUID is the subject attribute naming a node in its certificate.
var oidUID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}

// selfSigned makes a self-signed certificate: a node's (uid set) or the server's.
func selfSigned(t *testing.T, uid string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if uid != "" {
		tmpl.Subject.ExtraNames = []pkix.AttributeTypeAndValue{{Type: oidUID, Value: uid}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// nodeCerts stands for the node certificates: the listener accepts a client certificate
// only if it is one of them, and names the client by its subject UID.
type nodeCerts []tls.Certificate

func (n nodeCerts) configureTLS(c *tls.Config) {
	c.ClientAuth = tls.RequestClientCert
	c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return nil
		}
		for _, c := range n {
			if bytes.Equal(c.Certificate[0], raw[0]) {
				return nil
			}
		}
		return errors.New("not a node certificate")
	}
}

func (n nodeCerts) nodeID(r *http.Request) (string, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", false
	}
	for _, a := range r.TLS.PeerCertificates[0].Subject.Names {
		if a.Type.Equal(oidUID) {
			s, ok := a.Value.(string)
			return s, ok
		}
	}
	return "", false
}
