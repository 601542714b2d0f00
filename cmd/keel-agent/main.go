// Command keel-agent is Keel's node-side companion: it shares files with other nodes
// through the node's relay, checks and fetches the files shared with it, and runs as a
// service (the edge daemon).
//
// Usage:
//
//	keel-agent share --to TARGET --id FILE_ID [--ttl 1d] [--config FILE] PATH
//	keel-agent has --to TARGET --id FILE_ID [--config FILE] PATH
//	keel-agent fetch --from SOURCE --id FILE_ID [--hash HEX] [--mode 0600] [--config FILE] DEST
//	keel-agent edge ...                     the edge daemon (enroll, run, rotate-key)
//	keel-agent service ACTION [--config FILE]   install|uninstall|start|stop|status
//	keel-agent key-hash [--config FILE]         the node key's key-hash, as in the node map
//	keel-agent check-config [--config FILE]
//	keel-agent version
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/internal/cli"
	"github.com/keel-relay/keel/internal/logging"
	"github.com/keel-relay/keel/internal/svc"
)

// Set at link time: -X main.version=... -X main.commit=... -X main.date=...
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one `keel-agent NAME ...` subcommand: run gets the arguments after NAME and
// returns the exit code.
type command struct {
	name, args, summary string
	run                 func(args []string, stdout, stderr io.Writer) int
}

// commands is the subcommand table, in the order usage lists them.
func commands() []command {
	return []command{
		{"share", "--to TARGET --id FILE_ID [--ttl 1d] PATH", "send PATH to node TARGET through the relay, unless it already has it", cmdShare},
		{"has", "--to TARGET --id FILE_ID PATH", "does the relay hold PATH's content for TARGET? exit 0 yes, 1 no, 2 error", cmdHas},
		{"fetch", "--from SOURCE --id FILE_ID [--hash HEX] [--mode 0600] DEST", "download a file SOURCE shared with this node into DEST, checked", cmdFetch},
		{"edge", "enroll|run|rotate-key ...", "the edge daemon (ConnectEdge stream to the relay)", cmdEdge},
		{"service", "install|uninstall|start|stop|status", "manage keel-agent as a system service", cmdService},
		{"key-hash", "", "print the key-hash of key_file as the node map carries it (sha256//...)", cmdKeyHash},
		{"check-config", "", "validate and print the effective config", cmdCheckConfig},
		{"version", "", "print version information", cmdVersion},
	}
}

// usage returns the program's help text.
func usage() string {
	var b strings.Builder
	b.WriteString("keel-agent — the Keel node agent\n\nUsage:\n")
	for _, c := range commands() {
		line := "keel-agent " + c.name
		if c.args != "" {
			line += " " + c.args
		}
		fmt.Fprintf(&b, "  %s\n      %s\n", line, c.summary)
	}
	fmt.Fprintf(&b, `
Every command but version takes --config FILE (default %s if it exists, else the
embedded default); environment variables KEEL_AGENT_<SECTION>_<KEY> override it
(e.g. KEEL_AGENT_NODE_ID=node1, KEEL_AGENT_RELAY_URL=https://relay.example:443).
Flags come before the path.
`, config.DefaultPath())
	return b.String()
}

// run executes one command and returns the process exit code (0 success, 1 failure,
// 2 usage error, unless the command says otherwise).
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage())
		return 0
	case "--version", "-v":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(args, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "keel-agent: unknown command %q\n\n%s", name, usage())
	return 2
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		fmt.Fprintf(stderr, "keel-agent version: unexpected argument %q\n", args[0])
		return 2
	}
	fmt.Fprintf(stdout, "keel-agent %s (commit %s, built %s, %s, %s/%s)\n", version, commit, date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}

// configLoader is what --config gives a command: the loaded config, the file it came from
// ("" = embedded default) and whether --config named it.
type configLoader = func() (*config.Config, string, bool, error)

// configFlags registers --config on fs and returns a loader for it.
func configFlags(fs *flag.FlagSet) configLoader {
	return cli.ConfigFlag(fs, config.DefaultPath, config.Load)
}

// newLogger returns the logger of the log section, writing to w (the agent does not change
// its level while it runs).
func newLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	log, _ := logging.New(c.Level, c.Format, w)
	return log
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	cfg, code := svc.CheckConfigCommand(args, stdout, stderr, "keel-agent", "KEEL_AGENT_*", configFlags)
	if code != 0 {
		return code
	}
	// What share/has/fetch will need, reported but not failed on: the package installs
	// this config before the node has a key or an id.
	if ident, err := identity(cfg); err != nil {
		fmt.Fprintf(stderr, "note: share, has and fetch will fail: %v\n", err)
	} else {
		fmt.Fprintf(stderr, "note: node %s, key %s (keyid %s), hostname %s\n", ident.NodeID, cfg.KeyFile, ident.KeyID, ident.Hostname)
	}
	return 0
}
