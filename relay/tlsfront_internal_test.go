package relay

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

// TestDecryptLegacyKey: a CFEngine-encrypted PKCS#1 key is decrypted, every other key PEM
// comes back unchanged, and a wrong passphrase or a broken encrypted block is an error.
func TestDecryptLegacyKey(t *testing.T) {
	t.Parallel()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ec)
	plain := []byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")
	secret := []byte("the DER of a key")
	encrypt := func(pass string) []byte {
		//lint:ignore SA1019 the format CFEngine writes its keys in
		b, err := x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", secret, []byte(pass), x509.PEMCipher3DES)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(b)
	}
	for _, tc := range []struct {
		name, err string
		in, out   []byte
	}{
		{"plain PKCS#1", "", plain, plain},
		{"EC", "", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}), nil},
		{"PKCS#8", "", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil},
		{"not PEM", "", []byte("garbage"), []byte("garbage")},
		{"empty", "", nil, nil},
		{"certificate first", "", append([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), plain...), nil},
		{"CFEngine-encrypted", "", encrypt(cfenginePassphrase), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: secret})},
		{"another passphrase", "CFEngine's passphrase", encrypt("other"), nil},
		{"bad DEK-Info", "decrypting", []byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: NOPE,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"), nil},
	} {
		got, err := decryptLegacyKey(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.err)
			}
			continue
		}
		want := tc.out
		if want == nil {
			want = tc.in
		}
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: %q %v, want %q", tc.name, got, err, want)
		}
	}
}

func FuzzDecryptLegacyKey(f *testing.F) {
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: DES-EDE3-CBC,0011223344556677\n\nAAAAAAAAAAA=\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := decryptLegacyKey(b)
		if err == nil && out == nil && b != nil {
			t.Fatal("no key and no error")
		}
	})
}
