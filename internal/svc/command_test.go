package svc

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/kardianos/service"
)

var testCommand = Command{Name: "keel-x", DisplayName: "Keel X", Description: "Keel X: a test.", Usage: "usage: keel-x service ACTION [--config FILE]\n"}

func TestParseAction(t *testing.T) {
	for _, tc := range []struct {
		name           string
		args           []string
		action         string // when ok
		ok             bool
		code           int // when !ok
		stdout, stderr string
		config         string // --config after parsing, when ok
	}{
		{"no action", nil, "", false, 2, "", "usage: keel-x service ACTION", ""},
		{"flag first", []string{"--config", "x"}, "", false, 2, "", "usage: keel-x service ACTION", ""},
		{"help", []string{"help"}, "", false, 0, "usage: keel-x service ACTION", "", ""},
		{"unknown action", []string{"restart"}, "", false, 2, "", "keel-x service: unknown action \"restart\"\n\nusage: keel-x service ACTION", ""},
		{"extra argument", []string{"status", "extra"}, "", false, 2, "", `keel-x service status: unexpected argument "extra"`, ""},
		{"unknown flag", []string{"start", "--bogus"}, "", false, 2, "", "flag provided but not defined: -bogus", ""},
		{"flag error names the action", []string{"stop", "--bogus"}, "", false, 2, "", "service stop: flag provided but not defined: -bogus\n", ""},
		{"install with config", []string{"install", "--config", "/etc/k.yaml"}, "install", true, 0, "", "", "/etc/k.yaml"},
		{"run", []string{"run"}, "run", true, 0, "", "", ""},
		{"uninstall", []string{"uninstall"}, "uninstall", true, 0, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			var config *string
			action, code, ok := testCommand.ParseAction(tc.args, &stdout, &stderr, func(fs *flag.FlagSet) {
				config = fs.String("config", "", "config file")
			})
			if ok != tc.ok || action != tc.action || (!ok && code != tc.code) {
				t.Fatalf("ParseAction(%q) = %q, %d, %v; want %q, %d, %v (stderr %q)", tc.args, action, code, ok, tc.action, tc.code, tc.ok, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) || (tc.stdout == "" && stdout.Len() != 0) {
				t.Errorf("stdout %q, want %q", stdout.String(), tc.stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderr) || (tc.stderr == "" && stderr.Len() != 0) {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.stderr)
			}
			if ok && *config != tc.config {
				t.Errorf("--config = %q, want %q", *config, tc.config)
			}
		})
	}
}

// idle is a service program that does nothing.
type idle struct{}

func (idle) Start(service.Service) error { return nil }
func (idle) Stop(service.Service) error  { return nil }

func TestControlInstallFails(t *testing.T) {
	var stdout, stderr bytes.Buffer
	var got *service.Config
	install := func(conf *service.Config, _ bool) error {
		got = conf
		return errors.New("no config file")
	}
	logOut := io.Writer(&stderr)
	code := testCommand.Control("install", idle{}, install, &stdout, &stderr, &logOut)
	if code != 1 || stderr.String() != "keel-x service install: no config file\n" {
		t.Errorf("exit %d, stderr %q; want 1 and the install error", code, stderr.String())
	}
	if got == nil || got.Name != "keel-x" || got.DisplayName != "Keel X" || got.Description != "Keel X: a test." || got.Option["Restart"] != "on-failure" {
		t.Errorf("install got config %+v, want the command's names and Options()", got)
	}
}
