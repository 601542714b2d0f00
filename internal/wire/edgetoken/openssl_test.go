package edgetoken

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// openssl runs the openssl binary with a time limit; the test is skipped without one.
func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "openssl", args...).CombinedOutput()
	return string(out), err
}

// TestOpenSSLInterop: a token from Sign verifies with `openssl pkeyutl -verify -rawin`,
// and a token whose signature openssl made validates, with a key openssl generated.
func TestOpenSSLInterop(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	dir := t.TempDir()
	keyPEM, pubPEM := filepath.Join(dir, "key.pem"), filepath.Join(dir, "pub.pem")
	if out, err := openssl(t, "genpkey", "-algorithm", "ed25519", "-out", keyPEM); err != nil {
		t.Fatalf("genpkey: %v\n%s", err, out)
	}
	if out, err := openssl(t, "pkey", "-in", keyPEM, "-pubout", "-out", pubPEM); err != nil {
		t.Fatalf("pkey: %v\n%s", err, out)
	}
	b, err := os.ReadFile(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key := k.(ed25519.PrivateKey)
	v := Validator{
		Keys: func(iss, kid string) (ed25519.PublicKey, bool) {
			return key.Public().(ed25519.PublicKey), iss == "openssl"
		},
		Audience: AudienceEnrollment,
		Now:      func() time.Time { return testNow },
	}
	claims := Claims{Issuer: "openssl", Subject: "label", Audience: AudienceEnrollment, Tenant: "acme", ID: "jti-1", IssuedAt: testNow, Expiry: testNow.Add(15 * time.Minute)}

	// Go signs, openssl verifies (and refuses a tampered input).
	tok, err := Sign(key, "kid-1", claims)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndexByte(tok, '.')
	sig, err := b64.DecodeString(tok[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	input, sigFile, bad := filepath.Join(dir, "input"), filepath.Join(dir, "sig"), filepath.Join(dir, "bad")
	for f, data := range map[string]string{input: tok[:i], sigFile: string(sig), bad: tok[:i] + "x"} {
		if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := openssl(t, "pkeyutl", "-verify", "-pubin", "-inkey", pubPEM, "-rawin", "-in", input, "-sigfile", sigFile); err != nil {
		t.Fatalf("openssl refuses Sign's token: %v\n%s", err, out)
	}
	if out, err := openssl(t, "pkeyutl", "-verify", "-pubin", "-inkey", pubPEM, "-rawin", "-in", bad, "-sigfile", sigFile); err == nil {
		t.Fatalf("openssl accepts a tampered input:\n%s", out)
	}

	// openssl signs, Validate accepts.
	input2 := b64.EncodeToString([]byte(`{"alg":"EdDSA","kid":"kid-1"}`)) + "." + b64.EncodeToString([]byte(`{"iss":"openssl","aud":["edge-enrollment"],"tid":"acme","exp":1778052489}`))
	if err := os.WriteFile(input, []byte(input2), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := openssl(t, "pkeyutl", "-sign", "-inkey", keyPEM, "-rawin", "-in", input, "-out", sigFile); err != nil {
		t.Fatalf("openssl sign: %v\n%s", err, out)
	}
	sig2, err := os.ReadFile(sigFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Validate(input2 + "." + b64.EncodeToString(sig2))
	if err != nil {
		t.Fatalf("Validate refuses openssl's signature: %v", err)
	}
	if c.Tenant != "acme" || c.Audience != AudienceEnrollment {
		t.Fatalf("claims %+v", c)
	}
	if _, err := v.Validate(input2 + "." + b64.EncodeToString(sig)); !errors.Is(err, ErrSignature) {
		t.Fatalf("signature of another input: %v", err)
	}
}
