package edkey

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func pemOf(typ string, der []byte, headers map[string]string) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der, Headers: headers})
}

func TestRoundTrip(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := MarshalPrivate(k)
	if err != nil {
		t.Fatal(err)
	}
	// openssl genpkey -algorithm ed25519 writes the same form; white space around it is fine.
	for _, in := range [][]byte{b, append(bytes.Clone(b), "\n\n"...), append([]byte("\r\n\n"), b...)} {
		got, err := ParsePrivate(in)
		if err != nil || !got.Equal(k) {
			t.Fatalf("private round trip of %q: %v", in, err)
		}
	}
	pb, err := MarshalPublic(k.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublic(pb)
	if err != nil || !pub.Equal(k.Public()) {
		t.Fatalf("public round trip: %v", err)
	}
}

func TestParseBad(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPriv, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPub, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	good := pemOf(PrivateType, privDER, nil)
	goodPub := pemOf(PublicType, pubDER, nil)
	for _, tc := range []struct {
		name    string
		in      []byte
		public  bool
		wantErr string
	}{
		{"empty", nil, false, "no PEM"},
		{"garbage", []byte("not a key"), false, "no PEM"},
		{"begin line only", []byte("-----BEGIN PRIVATE KEY-----\n"), false, "no PEM"},
		{"wrong type", pemOf("RSA PRIVATE KEY", privDER, nil), false, `"RSA PRIVATE KEY"`},
		{"headers", pemOf(PrivateType, privDER, map[string]string{"Proc-Type": "4,ENCRYPTED"}), false, "headers"},
		{"two blocks", append(bytes.Clone(good), good...), false, "more than one"},
		{"trailing junk", append(bytes.Clone(good), "junk"...), false, "trailing data"},
		{"trailing junk after white space", append(bytes.Clone(good), "\n\n# comment\n"...), false, "trailing data"},
		{"trailing NUL", append(bytes.Clone(good), 0), false, "trailing data"},
		{"leading junk", append([]byte("key:\n"), good...), false, "data before"},
		{"leading malformed block", append([]byte("-----BEGIN X\nAAAA\n"), good...), false, "data before"},
		{"too long", append(bytes.Clone(good), bytes.Repeat([]byte("\n"), MaxPEM)...), false, "more than"},
		{"huge garbage", bytes.Repeat([]byte("A"), MaxPEM+1), false, "more than"},
		{"bad der", pemOf(PrivateType, []byte{1, 2, 3}, nil), false, "PKCS#8"},
		{"truncated der", pemOf(PrivateType, []byte{0x30, 0x01}, nil), false, "PKCS#8"},
		{"ecdsa private", pemOf(PrivateType, ecPriv, nil), false, "not an Ed25519"},
		{"public as private", goodPub, false, `want "PRIVATE KEY"`},
		{"ecdsa public", pemOf(PublicType, ecPub, nil), true, "not an Ed25519"},
		{"bad public der", pemOf(PublicType, []byte{0x30, 0}, nil), true, "PKIX"},
		{"private as public", good, true, `want "PUBLIC KEY"`},
		{"public trailing junk", append(bytes.Clone(goodPub), "x"...), true, "trailing data"},
		{"two public blocks", append(bytes.Clone(goodPub), goodPub...), true, "more than one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.public {
				_, err = ParsePublic(tc.in)
			} else {
				_, err = ParsePrivate(tc.in)
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	good := pemOf(PrivateType, privDER, nil)
	f.Add(good)
	f.Add(pemOf(PublicType, pubDER, nil))
	f.Add(append(bytes.Clone(good), "junk"...))
	f.Add(append([]byte("x\n"), good...))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if key, err := ParsePrivate(b); err == nil {
			if len(key) != ed25519.PrivateKeySize {
				t.Fatalf("accepted a private key of %d bytes", len(key))
			}
			again, err := MarshalPrivate(key)
			if err != nil {
				t.Fatal(err)
			}
			if k2, err := ParsePrivate(again); err != nil || !k2.Equal(key) {
				t.Fatalf("re-encoding does not round-trip: %v", err)
			}
			if _, rest := pem.Decode(b); !isSpace(rest) {
				t.Fatalf("accepted trailing data %q", rest)
			}
		}
		if k, err := ParsePublic(b); err == nil && len(k) != ed25519.PublicKeySize {
			t.Fatalf("accepted a public key of %d bytes", len(k))
		}
	})
}
