package relay_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keel-relay/keel/relay/relaytest"
)

// Remote run is accepted only from loopback and http.policy_server_networks; the peer address
// is set by hand on in-process requests (no traffic leaves loopback).
func TestRemoteRunPolicyServerNetworks(t *testing.T) {
	root := relaytest.NewNode("root", "root", 0)
	a := relaytest.NewNode("a", "root", 1)
	tests := []struct {
		name     string
		networks []string
		peer     string
		want     int
	}{
		{"loopback", nil, "127.0.0.1:40000", http.StatusOK},
		{"IPv6 loopback", nil, "[::1]:40000", http.StatusOK},
		{"no policy networks", nil, "10.255.1.2:40000", http.StatusForbidden},
		{"outside the policy networks", []string{"10.254.0.0/16"}, "10.255.1.2:40000", http.StatusForbidden},
		{"inside the policy networks", []string{"10.254.0.0/16", "10.255.1.2"}, "10.255.1.2:40000", http.StatusOK},
		{"in allowed_networks is not enough", nil, "192.0.2.7:40000", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := relaytest.Config(t, t.TempDir(), "root", relaytest.NodeMap(root, a))
			cfg.HTTP.PolicyServerNetworks = tt.networks
			cfg.HTTP.AllowedNetworks = []string{"127.0.0.0/8", "192.0.2.0/24"}
			cfg.RemoteRun.Command = []string{"/bin/true"}
			r := relaytest.Start(t, cfg)
			for _, path := range []string{"/remote-run/all", "/remote-run/nodes/a", "/remote-run/nodes"} {
				req := httptest.NewRequest(http.MethodPost, "/rudder/relay-api/1"+path, strings.NewReader("keep_output=false&nodes=a"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.RemoteAddr = tt.peer
				rec := httptest.NewRecorder()
				r.APIHandler().ServeHTTP(rec, req)
				if rec.Code != tt.want {
					t.Errorf("%s from %s: %d %q, want %d", path, tt.peer, rec.Code, rec.Body.String(), tt.want)
				}
				if tt.want == http.StatusForbidden && !strings.Contains(rec.Body.String(), "not in the networks allowed for remote-run") {
					t.Errorf("%s: 403 body %q", path, rec.Body.String())
				}
				if tt.want == http.StatusOK && !strings.Contains(rec.Body.String(), `"node":"a","exit_code":0`) {
					t.Errorf("%s: body %q lacks node a's result", path, rec.Body.String())
				}
			}
		})
	}
}
