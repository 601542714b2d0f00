// Package svc is the kardianos/service wiring shared by `keel-relay service` and
// `keel-agent service`: the parsing of `NAME service ACTION` and its steps from there
// (Command), the service options, the refusal to register a second unit where the
// package installed one, the actions after service.New (run, status, start, stop,
// install, uninstall), the Windows event log writer, the shared part of the systemd unit
// `service install` writes (SystemdUnit) and of `check-config` (CheckConfig). What a
// service runs, its flags and its own unit lines stay with each command.
package svc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/kardianos/service"
)

// Options returns the service manager options of a Keel service: restart 5s after a
// failure (Windows: recovery actions, systemd: Restart=on-failure), delayed automatic
// start on Windows, and 65536 open files.
func Options() service.KeyValue {
	return service.KeyValue{
		"OnFailure":              "restart",
		"OnFailureDelayDuration": "5s",
		"OnFailureResetPeriod":   600,
		"DelayedAutoStart":       true,
		"Restart":                "on-failure",
		"LimitNOFILE":            65536,
	}
}

// Systemd reports whether the service manager is systemd (on Linux).
func Systemd() bool {
	return runtime.GOOS == "linux" && service.ChosenSystem() != nil && service.ChosenSystem().String() == "linux-systemd"
}

// Packaged returns an error when action is install or uninstall, the service manager
// is systemd and the NAME package installed its own unit (NAME.service under
// /usr/lib/systemd/system or /lib/systemd/system): such a machine is left to
// systemctl and the package manager.
func Packaged(name, action string) error {
	if (action != "install" && action != "uninstall") || !Systemd() {
		return nil
	}
	if p := packagedUnit(name); p != "" {
		return fmt.Errorf("%s comes with the %s package; use systemctl (systemctl enable --now %s) or the package manager", p, name, name)
	}
	return nil
}

// packagedUnit returns the path of the NAME package's systemd unit, or "".
func packagedUnit(name string) string {
	for _, p := range []string{"/usr/lib/systemd/system/" + name + ".service", "/lib/systemd/system/" + name + ".service"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Do performs action on s for the program called name (such as "keel-relay") and
// returns the exit code: run serves until the service manager stops it (under the
// Windows service manager, *logOut is replaced by the event log first); status prints
// running, stopped, not installed or unknown (exit 0 only when running, 3 when stopped
// or not installed); install, uninstall, start and stop ask the service manager.
func Do(s service.Service, name, action string, stdout, stderr io.Writer, logOut *io.Writer) int {
	switch action {
	case "run":
		if runtime.GOOS == "windows" && !service.Interactive() {
			l, err := s.SystemLogger(nil)
			if err != nil {
				fmt.Fprintf(stderr, "%s service run: event log: %v\n", name, err)
				return 1
			}
			*logOut = LogWriter{l}
		}
		if err := s.Run(); err != nil {
			fmt.Fprintf(*logOut, "%s service run: %v\n", name, err)
			return 1
		}
		return 0
	case "status":
		st, err := s.Status()
		switch {
		case errors.Is(err, service.ErrNotInstalled):
			fmt.Fprintln(stdout, "not installed")
			return 3
		case err != nil:
			fmt.Fprintf(stderr, "%s service status: %v\n", name, err)
			return 1
		case st == service.StatusRunning:
			fmt.Fprintln(stdout, "running")
			return 0
		case st == service.StatusStopped:
			fmt.Fprintln(stdout, "stopped")
			return 3
		default:
			fmt.Fprintln(stdout, "unknown")
			return 4
		}
	default:
		if err := service.Control(s, action); err != nil {
			fmt.Fprintf(stderr, "%s service: %v\n", name, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s service: %s done\n", name, action)
		return 0
	}
}

// LogWriter sends each log record (slog writes one per Write) to the service
// manager's log — the Windows event log — at the record's level.
type LogWriter struct{ L service.Logger }

func (w LogWriter) Write(b []byte) (int, error) {
	msg := strings.TrimRight(string(b), "\n")
	var err error
	switch RecordLevel(msg) {
	case "ERROR":
		err = w.L.Error(msg)
	case "WARN":
		err = w.L.Warning(msg)
	default:
		err = w.L.Info(msg)
	}
	if err != nil {
		return 0, fmt.Errorf("service log: %w", err)
	}
	return len(b), nil
}

// RecordLevel returns the level of one slog text or JSON record: the first level field,
// which comes right after the time.
func RecordLevel(rec string) string {
	at, key := -1, ""
	for _, k := range []string{"level=", `"level":"`} {
		if i := strings.Index(rec, k); i >= 0 && (at < 0 || i < at) {
			at, key = i, k
		}
	}
	if at < 0 {
		return ""
	}
	v := rec[at+len(key):]
	if j := strings.IndexAny(v, " \"\n"); j >= 0 {
		v = v[:j]
	}
	return v
}
