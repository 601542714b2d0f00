package svc

import (
	"fmt"
	"strings"
)

// SystemdUnit returns the systemd unit template (kardianos/service's SystemdScript option)
// that `service install` writes for a hand-installed Keel binary: the [Unit] section and the
// [Service] lines every Keel service has, then service (the service's own [Service] lines,
// each ending in a newline, its Type= and ExecReload= among them), then [Install]. @CONFIG@
// in the result stands for the config file's path; the caller replaces it (and its own
// placeholders) after checking the paths with UnitPaths.
func SystemdUnit(service string) string {
	return unitHead + service + unitTail
}

// UnitPaths returns an error naming the first of paths that cannot go into a systemd unit
// here (spaces, quotes, backslashes and the characters systemd or the template expand).
func UnitPaths(paths ...string) error {
	for _, p := range paths {
		if strings.ContainsAny(p, " \t\n\"'\\{}$%;") {
			return fmt.Errorf("path %q: spaces, quotes and {}$%%;\\ cannot go into a systemd unit here", p)
		}
	}
	return nil
}

// unitHead is the start of every Keel service's unit, through the [Service] lines they share.
const unitHead = `[Unit]
Description={{Description}}
ConditionFileIsExecutable={{Path | cmdEscape}}
ConditionFileNotEmpty=@CONFIG@
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=600
StartLimitBurst=5

[Service]
ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}
Restart=on-failure
RestartSec=5
TimeoutStopSec=60
KillSignal=SIGTERM
KillMode=mixed
`

// unitTail ends every Keel service's unit.
const unitTail = `
[Install]
WantedBy=multi-user.target
`
