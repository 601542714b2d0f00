package tlspin

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/keyhash"
)

func TestLoadCAFileBad(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "missing.pem"), "CA file: open"},
		{"empty", write("empty.pem", nil), "no PEM certificate"},
		{"not PEM", write("text.pem", []byte("hello\n")), "no PEM certificate"},
		{"a key, not a certificate", write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})), "no PEM certificate"},
		{"too large", write("big.pem", make([]byte, MaxCAFile+1)), "larger than"},
		{"a directory", dir, "CA file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := LoadCAFile(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestClientConfig connects to a real TLS server (self-signed certificate) with each way of
// verifying it.
func TestClientConfig(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	good := keyhash.OfSPKI(srv.Certificate().RawSubjectPublicKeyInfo).String()
	wrong := "sha256//" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(notPEM, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, caFile, keyHash string
		configErr, connErr    string
	}{
		{"system roots refuse a self-signed server", "", "", "", "certificate"},
		{"its CA", ca, "", "", ""},
		{"right pin", "", good, "", ""},
		{"wrong pin", "", wrong, "", "does not match the pinned key hash"},
		{"pin and CA file", ca, good, "", ""},
		{"bad pin", "", "md5:00", "key hash", ""},
		{"pin with a bad CA file", notPEM, good, "no PEM certificate", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, err := ClientConfig(tc.caFile, tc.keyHash)
			if tc.configErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.configErr) {
					t.Fatalf("ClientConfig: err = %v, want one containing %q", err, tc.configErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
			defer c.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			switch {
			case tc.connErr == "" && err != nil:
				t.Fatalf("connect: %v", err)
			case tc.connErr != "" && (err == nil || !strings.Contains(err.Error(), tc.connErr)):
				t.Fatalf("connect: err = %v, want one containing %q", err, tc.connErr)
			}
		})
	}
}
