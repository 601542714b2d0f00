package svc

import (
	"fmt"
	"strings"
	"testing"
)

func TestUnitPaths(t *testing.T) {
	for _, tc := range []struct {
		paths []string
		bad   string // the path the error names; "" = none
	}{
		{[]string{"/etc/keel/relay.yaml", "/srv/keel"}, ""},
		{nil, ""},
		{[]string{"/etc/my keel/relay.yaml"}, "/etc/my keel/relay.yaml"},
		{[]string{"/srv/keel", "/etc/keel/a\tb"}, "/etc/keel/a\tb"},
		{[]string{"/etc/keel/\"x\""}, "/etc/keel/\"x\""},
		{[]string{"/etc/keel/'x'"}, "/etc/keel/'x'"},
		{[]string{`C:\keel`}, `C:\keel`},
		{[]string{"/etc/{{Path}}"}, "/etc/{{Path}}"},
		{[]string{"/var/$HOME"}, "/var/$HOME"},
		{[]string{"/var/%h"}, "/var/%h"},
		{[]string{"/var/a;b", "/etc/c d"}, "/var/a;b"},
		{[]string{"/var/a\nb"}, "/var/a\nb"},
	} {
		err := UnitPaths(tc.paths...)
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("UnitPaths(%q): %v", tc.paths, err)
		case tc.bad != "" && err == nil:
			t.Errorf("UnitPaths(%q): no error", tc.paths)
		case tc.bad != "" && !strings.HasPrefix(err.Error(), fmt.Sprintf("path %q: ", tc.bad)):
			t.Errorf("UnitPaths(%q): %v, want it to name %q", tc.paths, err, tc.bad)
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	unit := SystemdUnit("UMask=0027\n")
	for _, want := range []string{
		"[Unit]\n", "ConditionFileNotEmpty=@CONFIG@\n", "ExecStart={{Path | cmdEscape}}",
		"KillMode=mixed\nUMask=0027\n\n[Install]\nWantedBy=multi-user.target\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if !strings.HasPrefix(unit, "[Unit]\n") || !strings.HasSuffix(unit, "WantedBy=multi-user.target\n") {
		t.Errorf("unit does not start with [Unit] and end with [Install]:\n%s", unit)
	}
}
