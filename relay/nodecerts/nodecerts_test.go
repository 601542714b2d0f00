package nodecerts

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/nodecerts/nodecertstest"
)

const (
	node1 = "e745a140-40bc-4b86-b6dc-084488fc906b"
	node2 = "2d7e3b9c-1f45-4a9e-9b0c-5d3f8e2a7c61"
)

// certWithSubject makes a self-signed certificate with subject, in DER.
func certWithSubject(t testing.TB, subject pkix.Name) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func uidName(values ...any) pkix.Name {
	n := pkix.Name{CommonName: "host.example.com"}
	for _, v := range values {
		n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{Type: oidUID, Value: v})
	}
	return n
}

func TestParse(t *testing.T) {
	c1, p1, k1 := nodecertstest.Issue(t, node1, "node1.example.com")
	c2, p2, _ := nodecertstest.Issue(t, node2, "node2.example.com")
	c1b, p1b, _ := nodecertstest.Issue(t, node1, "node1.example.com") // renewed: same node
	other, _, _ := nodecertstest.Issue(t, node2, "node2.example.com")

	bundle := bytes.Join([][]byte{
		[]byte("Rudder node certificates\n"),
		p1,
		k1, // a key block: skipped
		[]byte("garbage between blocks -----\n"),
		p2,
		p1b,
		p1, // a duplicate
		pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte("not parsed")}),
		[]byte("trailing text"),
	}, nil)
	s, err := Parse(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 {
		t.Errorf("Len() = %d, want 3", s.Len())
	}
	for _, c := range []struct {
		cert *x509.Certificate
		id   string
		ok   bool
	}{
		{c1, node1, true},
		{c2, node2, true},
		{c1b, node1, true},
		{other, "", false},
		{nil, "", false},
	} {
		if id, ok := s.Lookup(c.cert); id != c.id || ok != c.ok {
			t.Errorf("Lookup = %q, %v; want %q, %v", id, ok, c.id, c.ok)
		}
	}
	// Not byte for byte one of the set: not accepted.
	if _, ok := s.Lookup(&x509.Certificate{Raw: append([]byte{}, c1.Raw[:len(c1.Raw)-1]...)}); ok {
		t.Error("a truncated certificate matched")
	}

	for _, empty := range [][]byte{nil, []byte(""), []byte("no blocks at all\n"), k1} {
		s, err := Parse(empty)
		if err != nil || s.Len() != 0 {
			t.Errorf("Parse(%.20q): %v; want an empty set", empty, err)
		}
	}
}

func TestParseBad(t *testing.T) {
	_, good, _ := nodecertstest.Issue(t, node1, "node1")
	noUID := pemCert(certWithSubject(t, pkix.Name{CommonName: "root"}))
	badUID := pemCert(certWithSubject(t, uidName("not a node id")))
	twoUIDs := pemCert(certWithSubject(t, uidName(node1, node2)))
	dotUID := pemCert(certWithSubject(t, uidName("..")))
	longUID := pemCert(certWithSubject(t, uidName(strings.Repeat("a", 256))))
	notDER := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})
	badBase64 := []byte("-----BEGIN CERTIFICATE-----\nnot base64 !!!\n-----END CERTIFICATE-----\n")
	noEnd := good[:len(good)-len("-----END CERTIFICATE-----\n")]
	for _, c := range []struct {
		name   string
		bundle []byte
		err    string
	}{
		{"no UID", nodecertstest.Bundle(good, noUID), `certificate 2 (CN "root"): subject has no UID`},
		{"bad UID", nodecertstest.Bundle(badUID), `certificate 1 (CN "host.example.com"): subject UID: invalid node id`},
		{"two UIDs", nodecertstest.Bundle(good, good, twoUIDs), "certificate 3 "},
		{"UID ..", nodecertstest.Bundle(dotUID), "invalid node id"},
		{"long UID", nodecertstest.Bundle(longUID), "invalid node id"},
		{"not DER", nodecertstest.Bundle(good, notDER), "certificate 2: x509:"},
		{"bad base64", nodecertstest.Bundle(good, badBase64, good), "certificate 3: not a valid PEM block"},
		{"no END", nodecertstest.Bundle(good, noEnd), "certificate 2: not a valid PEM block"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.bundle)
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("Parse error %v, want one containing %q", err, c.err)
			}
		})
	}
}

func TestSubjectUID(t *testing.T) {
	for _, c := range []struct {
		name    pkix.Name
		want    string
		wantErr string
	}{
		{uidName(node1), node1, ""},
		{uidName("root"), "root", ""},
		{pkix.Name{CommonName: node1}, "", "no UID"},
		{uidName(node1, node1), "", "more than one UID"},
		{uidName(""), "", "invalid node id"},
		{uidName("a/b"), "", "invalid node id"},
	} {
		cert, err := x509.ParseCertificate(certWithSubject(t, c.name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := SubjectUID(cert)
		if c.wantErr == "" && (err != nil || got != c.want) {
			t.Errorf("SubjectUID(%s) = %q, %v; want %q", c.name, got, err, c.want)
		}
		if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("SubjectUID(%s) = %q, %v; want an error with %q", c.name, got, err, c.wantErr)
		}
	}
	if _, err := SubjectUID(nil); err == nil {
		t.Error("SubjectUID(nil) accepted")
	}
}

// TestOpenSSLCert: a certificate made as Rudder agents make theirs, by openssl req with
// -subj "/UID=<id>/CN=<host>" (a UTF8String UID), names its node.
func TestOpenSSLCert(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	keyPath, certPath := filepath.Join(dir, "agent.priv"), filepath.Join(dir, "agent.cert")
	cmd := exec.Command("openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
		"-days", "3650", "-keyout", keyPath, "-out", certPath,
		"-subj", "/UID="+node1+"/CN=agent.example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	s, err := Load(certPath)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := s.Lookup(cert); !ok || id != node1 {
		t.Errorf("Lookup of openssl's certificate = %q, %v; want %q", id, ok, node1)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
	big := filepath.Join(dir, "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load of a file too big: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, pemCert([]byte("x")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Load of a bad file: %v, want its path", err)
	}
}

func FuzzParse(f *testing.F) {
	_, good, key := nodecertstest.Issue(f, node1, "node1")
	f.Add(good)
	f.Add(nodecertstest.Bundle(good, key, good))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Add(pemCert(certWithSubject(f, uidName("x"))))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "certificate ") {
				t.Fatalf("error without the certificate's index: %v", err)
			}
			return
		}
		if s.Len() > bytes.Count(data, []byte(pemBegin)) {
			t.Fatalf("%d certificates from %d blocks", s.Len(), bytes.Count(data, []byte(pemBegin)))
		}
	})
}

// FuzzSubjectUID parses arbitrary DER as a certificate and, when it parses, reads its UID.
func FuzzSubjectUID(f *testing.F) {
	f.Add(certWithSubject(f, uidName(node1)))
	f.Add(certWithSubject(f, uidName(node1, node2)))
	f.Add(certWithSubject(f, pkix.Name{CommonName: "x"}))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		id, err := SubjectUID(cert)
		if err != nil {
			return
		}
		s, err := Parse(pemCert(der))
		if err != nil {
			t.Fatalf("SubjectUID = %q but Parse: %v", id, err)
		}
		if got, ok := s.Lookup(cert); !ok || got != id {
			t.Fatalf("Lookup = %q, %v; want %q", got, ok, id)
		}
	})
}

// BenchmarkParse reads a bundle of 1000 node certificates (a reload of a mid-size fleet's
// nodescerts.pem); BenchmarkLookup finds one certificate of them.
func BenchmarkParse(b *testing.B) {
	var pems [][]byte
	for range 1000 {
		_, p, _ := nodecertstest.Issue(b, node1, "node.example.com")
		pems = append(pems, p)
	}
	bundle := nodecertstest.Bundle(pems...)
	b.SetBytes(int64(len(bundle)))
	for b.Loop() {
		if s, err := Parse(bundle); err != nil || s.Len() != 1000 {
			b.Fatal(s, err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	c, p, _ := nodecertstest.Issue(b, node1, "node.example.com")
	s, err := Parse(p)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, ok := s.Lookup(c); !ok {
			b.Fatal("not found")
		}
	}
}
