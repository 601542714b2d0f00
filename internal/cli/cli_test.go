package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
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

func TestConfigFlag(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "present.yaml")
	if err := os.WriteFile(present, []byte("a: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	for _, tc := range []struct {
		name         string
		args         []string
		defaultPath  string
		wantPath     string // what load gets and the loader returns
		wantExplicit bool
	}{
		{"default file exists", nil, present, present, false},
		{"default file missing: embedded default", nil, missing, "", false},
		{"--config names a file", []string{"--config", "/etc/x.yaml"}, present, "/etc/x.yaml", true},
		{"--config names a missing file", []string{"--config", missing}, present, missing, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			var gotPath string
			var gotExplicit bool
			load := ConfigFlag(fs, func() string { return tc.defaultPath }, func(path string, explicit bool) (string, error) {
				gotPath, gotExplicit = path, explicit
				return "cfg:" + path, nil
			})
			if u := fs.Lookup("config").Usage; !strings.Contains(u, "(default "+tc.defaultPath+" if it exists)") {
				t.Errorf("--config usage %q does not name the default", u)
			}
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			cfg, path, explicit, err := load()
			if err != nil || cfg != "cfg:"+tc.wantPath || path != tc.wantPath || explicit != tc.wantExplicit ||
				gotPath != tc.wantPath || gotExplicit != tc.wantExplicit {
				t.Errorf("loader = %q, %q, %v, %v (load got %q, %v); want path %q, explicit %v",
					cfg, path, explicit, err, gotPath, gotExplicit, tc.wantPath, tc.wantExplicit)
			}
		})
	}
}
