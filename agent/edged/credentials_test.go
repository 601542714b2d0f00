package edged

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/internal/edkey"
	"github.com/keel-relay/keel/internal/fsutil"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
	"github.com/keel-relay/keel/internal/wire/ids"
)

func testLog(t *testing.T) *slog.Logger {
	if os.Getenv("EDGED_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func mustKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	k, err := edkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustPEM(t testing.TB, k ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := edkey.MarshalPrivate(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nodeToken signs a node token for key, as a relay would (any signer: the agent does not
// verify it).
func nodeToken(t testing.TB, node string, key ed25519.PrivateKey, iat time.Time) string {
	t.Helper()
	signer := mustKey(t)
	tok, err := edgetoken.Sign(signer, "", edgetoken.Claims{
		Issuer: "relay", Subject: node, Audience: edgetoken.AudienceNode, Tenant: "acme", ID: uuid.NewString(),
		Role: "edge", Confirmation: edgetoken.Thumbprint(key.Public().(ed25519.PublicKey)),
		IssuedAt: iat, Expiry: iat.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// credFiles lays out key and token files in a temp dir.
type credFiles struct {
	t    *testing.T
	p    Paths
	node string
}

func newCredFiles(t *testing.T) *credFiles {
	dir := t.TempDir()
	return &credFiles{t: t, p: Paths{Key: filepath.Join(dir, "edge.key"), Token: filepath.Join(dir, "token")}, node: uuid.NewString()}
}

func (c *credFiles) write(path string, b []byte) {
	c.t.Helper()
	if err := fsutil.WriteFileAtomic(path, b, 0o600); err != nil {
		c.t.Fatal(err)
	}
}

func (c *credFiles) exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// TestLoadCredentialsRecovery: whatever step of a key change a crash interrupts, some
// bound key and token pair is on disk and LoadCredentials puts it in place, preferring
// the new one once the relay has issued its token.
func TestLoadCredentialsRecovery(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		// what is on disk; "old"/"new" name the key (and the token bound to it)
		key, keyNew, keyPrev, token, tokenNew string
		want                                  string // which key is in use after
	}{
		{name: "settled", key: "old", token: "old", want: "old"},
		{name: "staged new key, relay not asked", key: "old", keyNew: "new", token: "old", want: "old"},
		{name: "new token stored", key: "old", keyNew: "new", token: "old", tokenNew: "new", want: "new"},
		{name: "old key kept as prev", key: "old", keyNew: "new", keyPrev: "old", token: "old", tokenNew: "new", want: "new"},
		{name: "new key in place", key: "new", keyPrev: "old", token: "old", tokenNew: "new", want: "new"},
		{name: "new token in place", key: "new", keyPrev: "old", token: "new", want: "new"},
		{name: "enroll: token stored, no old key", keyNew: "new", tokenNew: "new", want: "new"},
		{name: "enroll --force staged", key: "old", keyNew: "new", token: "old", want: "old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCredFiles(t)
			keys := map[string]ed25519.PrivateKey{"old": mustKey(t), "new": mustKey(t)}
			toks := map[string]string{"old": nodeToken(t, c.node, keys["old"], now.Add(-time.Minute)), "new": nodeToken(t, c.node, keys["new"], now)}
			for path, which := range map[string]string{c.p.Key: tc.key, c.p.keyNew(): tc.keyNew, c.p.keyPrev(): tc.keyPrev} {
				if which != "" {
					c.write(path, mustPEM(t, keys[which]))
				}
			}
			for path, which := range map[string]string{c.p.Token: tc.token, c.p.tokenNew(): tc.tokenNew} {
				if which != "" {
					c.write(path, []byte(toks[which]+"\n"))
				}
			}
			cr, err := LoadCredentials(context.Background(), c.p, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			if !cr.Key.Equal(keys[tc.want]) || cr.Token != toks[tc.want] || cr.NodeID != c.node {
				t.Fatalf("loaded the wrong pair (want %s)", tc.want)
			}
			for _, f := range []string{c.p.keyNew(), c.p.keyPrev(), c.p.tokenNew()} {
				if c.exists(f) {
					t.Errorf("%s left behind", filepath.Base(f))
				}
			}
			// The settled files hold the pair, mode 0600.
			again, err := LoadCredentials(context.Background(), c.p, testLog(t))
			if err != nil || !again.Key.Equal(keys[tc.want]) {
				t.Fatalf("second load: %v", err)
			}
			for _, f := range []string{c.p.Key, c.p.Token} {
				if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
					t.Errorf("%s: %v %v", f, err, st.Mode())
				}
			}
		})
	}
}

func TestLoadCredentialsBad(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name  string
		setup func(c *credFiles)
		want  string
	}{
		{"nothing", func(*credFiles) {}, "not enrolled"},
		{"key only", func(c *credFiles) { c.write(c.p.Key, mustPEM(c.t, mustKey(c.t))) }, "not enrolled"},
		{"token for another key", func(c *credFiles) {
			c.write(c.p.Key, mustPEM(c.t, mustKey(c.t)))
			c.write(c.p.Token, []byte(nodeToken(c.t, c.node, mustKey(c.t), now)))
		}, "is not bound to the key"},
		{"garbage token", func(c *credFiles) {
			c.write(c.p.Key, mustPEM(c.t, mustKey(c.t)))
			c.write(c.p.Token, []byte("not a jwt"))
		}, "malformed"},
		{"garbage key", func(c *credFiles) {
			k := mustKey(c.t)
			c.write(c.p.Key, []byte("junk"))
			c.write(c.p.Token, []byte(nodeToken(c.t, c.node, k, now)))
		}, `no PEM "PRIVATE KEY" block`},
	} {
		c := newCredFiles(t)
		tc.setup(c)
		_, err := LoadCredentials(context.Background(), c.p, testLog(t))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrNotEnrolled) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestCommitKeepsPrevUntilToken: commitLocked stores the token before it moves the keys
// and drops the previous key last.
func TestCommit(t *testing.T) {
	c := newCredFiles(t)
	old, nk := mustKey(t), mustKey(t)
	c.write(c.p.Key, mustPEM(t, old))
	c.write(c.p.Token, []byte(nodeToken(t, c.node, old, time.Now())))
	if err := stageKey(c.p, nk); err != nil {
		t.Fatal(err)
	}
	tok := nodeToken(t, c.node, nk, time.Now())
	if err := commitLocked(c.p, tok); err != nil {
		t.Fatal(err)
	}
	cr, err := LoadCredentials(context.Background(), c.p, testLog(t))
	if err != nil || !cr.Key.Equal(nk) || cr.Token != tok {
		t.Fatalf("after commit: %v", err)
	}
	for _, f := range []string{c.p.keyNew(), c.p.keyPrev(), c.p.tokenNew()} {
		if c.exists(f) {
			t.Errorf("%s left", f)
		}
	}
}

func TestRefreshAt(t *testing.T) {
	iat := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &Credentials{Claims: edgetoken.Claims{IssuedAt: iat, Expiry: iat.Add(time.Hour)}}
	if got, want := c.RefreshAt(0.8), iat.Add(48*time.Minute); !got.Equal(want) {
		t.Errorf("RefreshAt = %s, want %s", got, want)
	}
	c.Claims.IssuedAt = time.Time{}
	if got, want := c.RefreshAt(0.5), iat.Add(30*time.Minute); !got.Equal(want) {
		t.Errorf("no iat: %s, want %s", got, want)
	}
}

func TestEnrollNodeID(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Edge.KeyFile, cfg.Edge.TokenFile = filepath.Join(dir, "edge.key"), filepath.Join(dir, "token")
	id := uuid.NewString()
	cfg.NodeID = id
	if got, err := EnrollNodeID(cfg); err != nil || got != id {
		t.Errorf("UUID node id: %q %v", got, err)
	}
	cfg.NodeID = "root"
	got, err := EnrollNodeID(cfg)
	if err != nil || ids.ValidEdgeNodeID(got) != nil {
		t.Fatalf("non-UUID node id: %q %v", got, err)
	}
	again, _ := EnrollNodeID(cfg)
	if again != got {
		t.Errorf("generated id not stable: %q then %q", got, again)
	}
	if b, _ := os.ReadFile(cfg.Edge.KeyFile + ".node-id"); strings.TrimSpace(string(b)) != got {
		t.Errorf("node-id file: %q", b)
	}
}

func TestEnrollRefusesExistingKey(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Edge.KeyFile, cfg.Edge.TokenFile = filepath.Join(dir, "edge.key"), filepath.Join(dir, "token")
	key := mustPEM(t, mustKey(t))
	if err := fsutil.WriteFileAtomic(cfg.Edge.KeyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Enroll(context.Background(), cfg, EnrollRequest{Relay: "127.0.0.1:1", Token: "x"}, testLog(t))
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("enroll over an existing key: %v", err)
	}
	// --force against an unreachable relay fails and leaves the key as it was.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Enroll(ctx, cfg, EnrollRequest{Relay: "127.0.0.1:1", Token: "x", Force: true}, testLog(t)); err == nil {
		t.Fatal("enroll against nothing succeeded")
	}
	if b, _ := os.ReadFile(cfg.Edge.KeyFile); !bytes.Equal(b, key) {
		t.Error("a failed enroll --force changed the key")
	}
	if _, err := os.Stat(cfg.Edge.KeyFile + ".new"); err == nil {
		t.Error("a failed enroll left the staged key")
	}
}
