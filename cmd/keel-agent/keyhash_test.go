package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-relay/keel/relay/relaytest"
)

// TestKeyHash: key-hash prints, for the key of key_file, what relaytest.Node.Pin computes
// (what the node map carries), for a PKCS#1 and a PKCS#8 key; a missing or bad key fails.
func TestKeyHash(t *testing.T) {
	dir := t.TempDir()
	n := relaytest.NewNode("n1", "root", 0)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(n.Key)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]byte{
		"pkcs1.pem": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(n.Key)}),
		"pkcs8.pem": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		"bad.pem":   []byte("not a key\n"),
	}
	config := func(key string) string {
		path := filepath.Join(dir, key+".yaml")
		if err := os.WriteFile(filepath.Join(dir, key), keys[key], 0o600); err != nil {
			t.Fatal(err)
		}
		y := "node_id: n1\nrelay_url: https://relay.test/\nkey_file: " + filepath.Join(dir, key) + "\n"
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, key := range []string{"pkcs1.pem", "pkcs8.pem"} {
		var out, errb bytes.Buffer
		if code := run([]string{"key-hash", "--config", config(key)}, &out, &errb); code != 0 || out.String() != n.Pin()+"\n" {
			t.Errorf("%s: %d %q %s, want %s", key, code, out.String(), errb.String(), n.Pin())
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"key-hash", "--config", config("bad.pem")}, 1, "bad.pem"},
		{[]string{"key-hash", "--config", filepath.Join(dir, "none.yaml")}, 1, "none.yaml"},
		{[]string{"key-hash", "extra"}, 2, "unexpected argument"},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.msg) || out.Len() != 0 {
			t.Errorf("%v: %d %q %q, want %d and %q", tc.args, code, out.String(), errb.String(), tc.code, tc.msg)
		}
	}
}
