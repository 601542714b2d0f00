package svc

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/kardianos/service"

	"github.com/keel-relay/keel/internal/cli"
)

// Command is one program's `NAME service ACTION` command: the names the service manager
// shows and the command's help text. What the service runs, its flags and the install
// step stay with the program.
type Command struct {
	Name        string // the program and the service, such as "keel-relay"
	DisplayName string // such as "Keel relay"
	Description string // one sentence for the service manager
	Usage       string // the help text of `NAME service`
}

// actions are the actions `NAME service` performs (help aside).
var actions = []string{"install", "uninstall", "start", "stop", "status", "run"}

// ParseAction parses the arguments after `NAME service`: an action, then the action's
// flags (flags registers them on the action's flag set), and nothing after them. It
// returns the action with ok true, or ok false and the exit code the command ends with:
// 0 for help (the usage on stdout), 2 for a missing or unknown action, a bad flag or an
// argument after the flags (why on stderr).
func (c Command) ParseAction(args []string, stdout, stderr io.Writer, flags func(*flag.FlagSet)) (action string, code int, ok bool) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, c.Usage)
		return "", 2, false
	}
	action, args = args[0], args[1:]
	switch {
	case action == "help":
		fmt.Fprint(stdout, c.Usage)
		return "", 0, false
	case !slices.Contains(actions, action):
		fmt.Fprintf(stderr, "%s service: unknown action %q\n\n%s", c.Name, action, c.Usage)
		return "", 2, false
	}
	fs := flag.NewFlagSet("service "+action, flag.ContinueOnError)
	flags(fs)
	if !cli.NoArgs(fs, args, stderr, c.Name+" service "+action) {
		return "", 2, false
	}
	return action, 0, true
}

// Control performs action (from ParseAction) for prog and returns the exit code: it
// refuses install and uninstall where the program's package installed the unit
// (Packaged), lets install fill in the service config for `install` (the arguments the
// service manager passes, the unit under systemd), then performs the action (Do, which
// may replace *logOut). A failure before Do is said on stderr and exits 1.
func (c Command) Control(action string, prog service.Interface, install func(conf *service.Config, systemd bool) error, stdout, stderr io.Writer, logOut *io.Writer) int {
	conf := &service.Config{
		Name:        c.Name,
		DisplayName: c.DisplayName,
		Description: c.Description,
		Option:      Options(),
	}
	if err := Packaged(c.Name, action); err != nil {
		fmt.Fprintf(stderr, "%s service %s: %v\n", c.Name, action, err)
		return 1
	}
	if action == "install" {
		if err := install(conf, Systemd()); err != nil {
			fmt.Fprintf(stderr, "%s service install: %v\n", c.Name, err)
			return 1
		}
	}
	s, err := service.New(prog, conf)
	if err != nil {
		fmt.Fprintf(stderr, "%s service: %v\n", c.Name, err)
		return 1
	}
	return Do(s, c.Name, action, stdout, stderr, logOut)
}
