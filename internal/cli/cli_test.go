package cli

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func TestNoArgs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		ok     bool
		stderr string // "" = nothing written
		config string // --config after parsing, when ok
	}{
		{"no arguments", nil, true, "", ""},
		{"flag only", []string{"--config", "f.yaml"}, true, "", "f.yaml"},
		{"flag then argument", []string{"--config", "f.yaml", "extra"}, false, `keel-x run: unexpected argument "extra"` + "\n", ""},
		{"argument only", []string{"now", "later"}, false, `keel-x run: unexpected argument "now"` + "\n", ""},
		{"after --", []string{"--", "-x"}, false, `keel-x run: unexpected argument "-x"` + "\n", ""},
		{"unknown flag", []string{"--bogus"}, false, "flag provided but not defined: -bogus", ""},
		{"missing value", []string{"--config"}, false, "flag needs an argument: -config", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			config := fs.String("config", "", "config file")
			var stderr bytes.Buffer
			ok := NoArgs(fs, tc.args, &stderr, "keel-x run")
			if ok != tc.ok {
				t.Fatalf("NoArgs(%q) = %v, want %v (stderr %q)", tc.args, ok, tc.ok, stderr.String())
			}
			switch {
			case tc.stderr == "" && stderr.Len() != 0:
				t.Errorf("stderr %q, want nothing", stderr.String())
			case !strings.Contains(stderr.String(), tc.stderr):
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tc.stderr)
			}
			if ok && *config != tc.config {
				t.Errorf("--config = %q, want %q", *config, tc.config)
			}
		})
	}
}

func TestParseKeepsArguments(t *testing.T) {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	force := fs.Bool("force", false, "")
	var stderr bytes.Buffer
	if !Parse(fs, []string{"--force", "a", "b"}, &stderr) {
		t.Fatalf("Parse failed: %s", stderr.String())
	}
	if !*force || fs.NArg() != 2 || fs.Arg(0) != "a" {
		t.Errorf("force %v, args %q; want true, [a b]", *force, fs.Args())
	}
	if Parse(fs, []string{"--nope"}, &stderr) || !strings.Contains(stderr.String(), "-nope") {
		t.Errorf("Parse accepted --nope or did not say so on stderr: %q", stderr.String())
	}
}
