package edged

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-relay/keel/agent/config"
)

func TestTransportFor(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		relay          string
		ca             string
		allowPlaintext bool
		want           string // security protocol, or "error: ..."
	}{
		{"127.0.0.1:50056", "", false, "insecure"},
		{"[::1]:50056", "", false, "insecure"},
		{"localhost:50056", "", false, "insecure"},
		{"relay.example:443", "", false, "tls"},
		{"10.0.0.1:50056", "", false, "tls"},
		{"10.0.0.1:50056", "", true, "insecure"},
		{"127.0.0.1:50056", notPEM, false, "error: no PEM certificate"},
		{"relay.example:443", filepath.Join(dir, "missing.pem"), false, "error: edge.ca_file"},
		{"relay.example", "", false, "error: missing port"},
	} {
		e := config.Default().Edge
		e.CAFile, e.AllowPlaintext = tc.ca, tc.allowPlaintext
		creds, err := transportFor(tc.relay, e)
		got := ""
		if err != nil {
			got = "error: " + err.Error()
		} else {
			got = creds.Info().SecurityProtocol
		}
		if !strings.HasPrefix(got, tc.want) && !(strings.HasPrefix(tc.want, "error: ") && strings.Contains(got, strings.TrimPrefix(tc.want, "error: "))) {
			t.Errorf("%s ca=%q plaintext=%v: %q, want %q", tc.relay, tc.ca, tc.allowPlaintext, got, tc.want)
		}
	}
}
