package main

import (
	"crypto/ed25519"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/edge/keys"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
	"github.com/keel-relay/keel/relay/relaytest"
)

// TestEdgeEnrollToken: `keel-relay edge enroll-token` prints a token signed by the relay's
// edge key while the relay runs (the key file is outside the locked database).
func TestEdgeEnrollToken(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	cfg := writeConfig(t, dir, "relay.yaml", relayConf{NodeID: "relay-e", DataDir: data, Listen: api, Admin: admin})
	p := startRelay(t, "relay", cfg, api, admin)

	code, stdout, stderr := runCLI(t, procOptions{}, "edge", "enroll-token", "--config", cfg, "--tenant", "acme", "--label", "kiosk-7", "--ttl", "20m")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	key, err := keys.Load(filepath.Join(data, keys.FileName))
	if err != nil {
		t.Fatal(err)
	}
	v := edgetoken.Validator{
		Keys: func(iss, _ string) (ed25519.PublicKey, bool) {
			return key.Public().(ed25519.PublicKey), iss == keys.Issuer("relay-e")
		},
		Audience: edgetoken.AudienceEnrollment,
	}
	c, err := v.Validate(strings.TrimSpace(stdout))
	if err != nil {
		t.Fatalf("token: %v (%q)", err, stdout)
	}
	if c.Tenant != "acme" || c.Subject != "kiosk-7" || c.ID == "" || c.Expiry.Sub(c.IssuedAt) != 20*time.Minute {
		t.Fatalf("claims = %+v", c)
	}
	if !strings.Contains(stderr, "single use") {
		t.Errorf("stderr = %q", stderr)
	}
	p.stop(t)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"edge", "enroll-token", "--config", cfg}, "--tenant is required"},
		{[]string{"edge", "enroll-token", "--config", cfg, "--tenant", "a", "--ttl", "0s"}, "--ttl must be"},
		{[]string{"edge", "enroll-token", "--config", cfg, "--tenant", "a", "extra"}, "unexpected argument"},
		{[]string{"edge", "frobnicate"}, "unknown subcommand"},
		{[]string{"edge"}, "keel-relay edge: missing command\nRun 'keel-relay edge --help' for usage.\n"},
	} {
		code, _, stderr := runCLI(t, procOptions{}, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}
