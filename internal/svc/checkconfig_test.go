package svc

import (
	"bytes"
	"errors"
	"testing"
)

// yamlConfig is a Config whose YAML is fixed.
type yamlConfig struct {
	out []byte
	err error
}

func (c yamlConfig) YAML() ([]byte, error) { return c.out, c.err }

func TestCheckConfig(t *testing.T) {
	for _, tc := range []struct {
		name           string
		cfg            Config
		path           string
		loadErr        error
		code           int
		stdout, stderr string
	}{
		{"file", yamlConfig{out: []byte("a: 1\n")}, "/etc/keel/relay.yaml", nil, 0,
			"# config OK (/etc/keel/relay.yaml, with KEEL_* environment overrides)\na: 1\n", ""},
		{"embedded default", yamlConfig{out: []byte("a: 1\n")}, "", nil, 0,
			"# config OK (embedded default, with KEEL_* environment overrides)\na: 1\n", ""},
		{"not valid", nil, "/etc/keel/relay.yaml", errors.New("log.level: \"loud\" is not debug, info, warn or error"), 1,
			"", "keel-relay: config is not valid:\nlog.level: \"loud\" is not debug, info, warn or error\n"},
		{"no YAML", yamlConfig{err: errors.New("marshal: boom")}, "", nil, 1,
			"", "keel-relay: marshal: boom\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := CheckConfig(&stdout, &stderr, "keel-relay", "KEEL_*", tc.cfg, tc.path, tc.loadErr)
			if code != tc.code || stdout.String() != tc.stdout || stderr.String() != tc.stderr {
				t.Errorf("got %d, stdout %q, stderr %q; want %d, %q, %q", code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}
