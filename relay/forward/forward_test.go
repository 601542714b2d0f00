package forward

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/keyhash"
	"github.com/keel-relay/keel/relay/nodemap"
	"github.com/keel-relay/keel/storage"
)

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempts int
		min, max time.Duration
	}{
		{0, 500 * time.Millisecond, time.Second},
		{1, time.Second, 2 * time.Second},
		{3, 4 * time.Second, 8 * time.Second},
		{20, 150 * time.Second, 300 * time.Second}, // capped at max_backoff
		{1000, 150 * time.Second, 300 * time.Second},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := Backoff(tt.attempts, time.Second, 5*time.Minute)
			if d < tt.min || d > tt.max {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", tt.attempts, d, tt.min, tt.max)
			}
			seen[d] = true
		}
		if len(seen) < 50 {
			t.Errorf("Backoff(%d): only %d distinct delays in 200 draws: no jitter?", tt.attempts, len(seen))
		}
	}
}

func TestClassify(t *testing.T) {
	tests := map[int]Outcome{
		200: Delivered, 201: Delivered, 204: Delivered,
		301: Refused, 400: Refused, 403: Refused, 404: Refused, 413: Refused,
		408: Retry, 425: Retry, 429: Retry, 500: Retry, 502: Retry, 503: Retry, 507: Retry,
	}
	for code, want := range tests {
		if got := Classify(code); got != want {
			t.Errorf("Classify(%d) = %v, want %v", code, got, want)
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// spkiPin returns the sha256//base64 pin of a test server's certificate key.
func spkiPin(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	return keyhash.OfSPKI(srv.Certificate().RawSubjectPublicKeyInfo).String()
}

func mapWith(t *testing.T, self, sub, hostname, keyHash string) func() *nodemap.Map {
	t.Helper()
	m, err := nodemap.Parse([]byte(fmt.Sprintf(`{%q: {"hostname": %q, "policy-server": %q, "key-hash": %q}}`,
		sub, hostname, self, keyHash)), self)
	if err != nil {
		t.Fatal(err)
	}
	return func() *nodemap.Map { return m }
}

// Sub-relays are verified by their key pin from the node map, the upstream by a configured
// pin: a wrong key is refused before anything is sent.
func TestHopVerification(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	good := spkiPin(t, srv)
	wrong := "sha256//" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	k := storage.FileKey{Target: "t", Source: "s", ID: "f"}

	tests := []struct {
		name    string
		opts    HopOptions
		keyHash string
		hop     string
		wantErr string
	}{
		{"sub-relay, right pin", HopOptions{SubRelayURL: "https://{hostname}"}, good, "sub", ""},
		{"sub-relay, wrong pin", HopOptions{SubRelayURL: "https://{hostname}"}, wrong, "sub", "does not match the pinned"},
		{"sub-relay, no key-hash", HopOptions{SubRelayURL: "https://{hostname}"}, "sha256:", "sub", "no usable key-hash"},
		{"sub-relay over http refused", HopOptions{SubRelayURL: "http://{hostname}"}, good, "sub", "plain http next hop"},
		{"upstream, right pin", HopOptions{Upstream: srv.URL, UpstreamKeyHash: good}, good, "", ""},
		{"upstream, wrong pin", HopOptions{Upstream: srv.URL, UpstreamKeyHash: wrong}, good, "", "does not match the pinned"},
		{"upstream, self-signed without CA", HopOptions{Upstream: srv.URL}, good, "", "certificate"},
		{"upstream, insecure switch", HopOptions{Upstream: srv.URL, InsecureSkipVerify: true}, good, "", ""},
		{"no upstream at the root", HopOptions{}, good, "", "no upstream configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hops, err := NewHops(tt.opts, mapWith(t, "root", "sub", host, tt.keyHash), discard())
			if err != nil {
				t.Fatal(err)
			}
			hop, err := hops.Resolve(tt.hop)
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, _, err = Head(ctx, hop, k, "00")
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
