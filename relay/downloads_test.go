package relay_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-relay/keel/relay/relaytest"
)

// The download routes are mounted on the relay API listener behind http.allowed_networks:
// served to loopback over a real connection, refused (403) to a peer outside the networks.
func TestDownloadRoutesBehindAllowedNetworks(t *testing.T) {
	dir := t.TempDir()
	root := relaytest.NewNode("root", "root", 0)
	cfg := relaytest.Config(t, dir, "root", relaytest.NodeMap(root))
	cfg.HTTP.AllowedNetworks = []string{"127.0.0.0/8"}
	cfg.SharedFolder.Path = filepath.Join(dir, "shared")
	cfg.Policies.Path = filepath.Join(dir, "share")
	cfg.Policies.CommonPath = filepath.Join(dir, "share", "common")
	for path, body := range map[string]string{
		filepath.Join(cfg.SharedFolder.Path, "a file"):        "123\n",
		filepath.Join(cfg.Policies.CommonPath, "promises.cf"): "common\n",
		filepath.Join(cfg.Policies.Path, "n1", "rules.cf"):    "node\n",
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := relaytest.Start(t, cfg)

	tests := []struct {
		path      string
		wantLocal int
		wantBody  string
	}{
		{"/uuid", http.StatusOK, "root"},
		{"/rudder/relay-api/shared-folder/a%20file", http.StatusOK, "123\n"},
		{"/rudder/relay-api/1/shared-folder/a%20file", http.StatusOK, "123\n"},
		{"/common/promises.cf", http.StatusOK, "common\n"},
		// Plain HTTP: never a node's policies.
		{"/policies/n1/rules.cf", http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, body := relaytest.Do(t, http.MethodGet, r.URL+tt.path, nil)
			if code != tt.wantLocal || (tt.wantBody != "" && body != tt.wantBody) {
				t.Errorf("GET %s from loopback: %d %q, want %d %q", tt.path, code, body, tt.wantLocal, tt.wantBody)
			}
			if code, body := relaytest.Do(t, http.MethodHead, r.URL+tt.path, nil); code != tt.wantLocal || body != "" {
				t.Errorf("HEAD %s from loopback: %d %q, want %d", tt.path, code, body, tt.wantLocal)
			}
			for _, m := range []string{http.MethodGet, http.MethodHead} {
				req := httptest.NewRequest(m, tt.path, nil)
				req.RemoteAddr = "192.0.2.7:40000"
				rec := httptest.NewRecorder()
				r.APIHandler().ServeHTTP(rec, req)
				if rec.Code != http.StatusForbidden || (m == http.MethodGet && !strings.Contains(rec.Body.String(), "not in the networks allowed")) {
					t.Errorf("%s %s from outside allowed_networks: %d %q, want 403", m, tt.path, rec.Code, rec.Body.String())
				}
			}
		})
	}
}
