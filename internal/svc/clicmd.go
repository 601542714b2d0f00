package svc

import (
	"io"

	"github.com/keel-relay/keel/internal/cli"
)

// Subcommands returns the command-table entries of `NAME service ACTION`, one per action;
// each calls run (the program's `service` command) with its action first.
func (c Command) Subcommands(run func(args []string, stdout, stderr io.Writer) int) []*cli.Command {
	action := func(name string) func(args []string, stdout, stderr io.Writer) int {
		return func(args []string, stdout, stderr io.Writer) int {
			return run(append([]string{name}, args...), stdout, stderr)
		}
	}
	return []*cli.Command{
		{Name: "install", Args: "[--config FILE]", Summary: "register " + c.Name + " with the service manager (Windows SCM, systemd, ...) to run at boot",
			Help: `Register the service: the service manager runs "` + c.Name + ` service run --config FILE" at
boot. FILE must exist and set absolute paths. Needs an elevated prompt or root; refused where
the package installed the systemd unit.`, Run: action("install")},
		{Name: "uninstall", Summary: "remove that registration", Run: action("uninstall")},
		{Name: "start", Summary: "ask the service manager to start the service", Run: action("start")},
		{Name: "stop", Summary: "ask the service manager to stop the service", Run: action("stop")},
		{Name: "status", Summary: "print running, stopped, not installed or unknown", Run: action("status"),
			Exit: append(cli.ExitCodes[:len(cli.ExitCodes):len(cli.ExitCodes)],
				cli.ExitCode{Code: 3, Meaning: "stopped or not installed"}, cli.ExitCode{Code: 4, Meaning: "unknown"})},
		{Name: "run", Args: "[--config FILE]", Summary: "what the service manager executes: serve until told to stop", Run: action("run")},
	}
}
