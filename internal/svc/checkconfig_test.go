package svc

import (
	"bytes"
	"errors"
	"flag"
	"strings"
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

func TestCheckConfigCommand(t *testing.T) {
	good := yamlConfig{out: []byte("a: 1\n")}
	for _, tc := range []struct {
		name     string
		args     []string
		loadErr  error
		code     int
		loadedAs string // --config as the loader saw it; "-" = not loaded
		stdout   string // must contain
		stderr   string // must contain
	}{
		{"default", nil, nil, 0, "", "# config OK (embedded default, with KEEL_X_* environment overrides)\na: 1\n", ""},
		{"file", []string{"--config", "/etc/x.yaml"}, nil, 0, "/etc/x.yaml", "# config OK (/etc/x.yaml,", ""},
		{"not valid", []string{"--config", "/etc/x.yaml"}, errors.New("bad key"), 1, "/etc/x.yaml", "", "keel-x: config is not valid:\nbad key\n"},
		{"argument", []string{"--config", "/etc/x.yaml", "extra"}, nil, 2, "-", "", "keel-x check-config: unexpected argument \"extra\"\n"},
		{"unknown flag", []string{"--bogus"}, nil, 2, "-", "", "flag provided but not defined: -bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loadedAs := "-"
			flags := func(fs *flag.FlagSet) func() (yamlConfig, string, bool, error) {
				path := fs.String("config", "", "config file")
				return func() (yamlConfig, string, bool, error) {
					loadedAs = *path
					return good, *path, *path != "", tc.loadErr
				}
			}
			var stdout, stderr bytes.Buffer
			cfg, code := CheckConfigCommand(tc.args, &stdout, &stderr, "keel-x", "KEEL_X_*", flags)
			if code != tc.code || loadedAs != tc.loadedAs {
				t.Fatalf("exit %d, loaded %q; want %d, %q (stderr %q)", code, loadedAs, tc.code, tc.loadedAs, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) || (tc.stdout == "" && stdout.Len() != 0) {
				t.Errorf("stdout %q, want %q", stdout.String(), tc.stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderr) || (tc.stderr == "" && stderr.Len() != 0) {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.stderr)
			}
			if code == 0 && string(cfg.out) != "a: 1\n" {
				t.Errorf("returned config %+v, want the loaded one", cfg)
			}
		})
	}
}
