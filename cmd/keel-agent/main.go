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
//	keel-agent help [COMMAND ...]               the help of a command (or COMMAND --help)
//	keel-agent completion bash|zsh              the shell completion script
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"

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

// footer ends the program's --help.
const footer = `Every command but version takes --config FILE (default %s if it exists, else the
embedded default); environment variables KEEL_AGENT_<SECTION>_<KEY> override it
(e.g. KEEL_AGENT_NODE_ID=node1, KEEL_AGENT_RELAY_URL=https://relay.example:443).
`

// agentProgram is keel-agent's command table: the dispatch, --help, shell completion and
// the man page are all made from it. A new command is one entry: its name, synopsis,
// one-line summary, optional help text, and its func(args, stdout, stderr) int, which
// parses its flags with cli.Parse or cli.NoArgs before anything else.
func agentProgram() *cli.Program {
	edgeAction := func(action string) func(args []string, stdout, stderr io.Writer) int {
		return func(args []string, stdout, stderr io.Writer) int {
			return cmdEdge(append([]string{action}, args...), stdout, stderr)
		}
	}
	return &cli.Program{
		Name: "keel-agent", Summary: "the Keel node agent", Footer: fmt.Sprintf(footer, config.DefaultPath()), Man: agentMan,
		Commands: []*cli.Command{
			{Name: "share", Args: "--to TARGET --id FILE_ID [--ttl 1d] PATH", Summary: "send PATH to node TARGET through the relay, unless it already has it", Help: shareHelp, Run: cmdShare},
			{Name: "has", Args: "--to TARGET --id FILE_ID PATH", Summary: "does the relay hold PATH's content for TARGET? exit 0 yes, 1 no, 2 error", Help: hasHelp, Run: cmdHas,
				Exit: []cli.ExitCode{{Code: 0, Meaning: "the relay holds the content"}, {Code: 1, Meaning: "it does not (absent or different)"}, {Code: 2, Meaning: "error, usage errors included"}}},
			{Name: "fetch", Args: "--from SOURCE --id FILE_ID [--hash HEX] [--mode 0600] DEST", Summary: "download a file SOURCE shared with this node into DEST, checked", Help: fetchHelp, Run: cmdFetch},
			{Name: "edge", Summary: "the edge daemon (ConnectEdge stream to the relay)", Help: edgeHelp, Sub: []*cli.Command{
				{Name: "enroll", Args: "--relay HOST:PORT --token JWT [--force]", Summary: "enroll this node's edge key with the relay", Help: enrollHelp, Run: edgeAction("enroll")},
				{Name: "run", Summary: "run the edge daemon in the foreground", Help: edgeRunHelp, Run: edgeAction("run")},
				{Name: "rotate-key", Args: "[--relay HOST:PORT]", Summary: "replace the edge key (RotateEdgeKey); a running daemon picks the new key up", Run: edgeAction("rotate-key")},
			}},
			{Name: "service", Summary: "manage keel-agent as a system service", Help: serviceHelp, Sub: serviceCommand.Subcommands(cmdService)},
			{Name: "key-hash", Args: "[--config FILE]", Summary: "print the key-hash of key_file as the node map carries it (sha256//...)", Run: cmdKeyHash},
			{Name: "check-config", Summary: "validate and print the effective config", Run: cmdCheckConfig},
			{Name: "version", Summary: "print version information", Run: cmdVersion},
		},
	}
}

// run executes one command and returns the process exit code (0 success, 1 failure,
// 2 usage error, unless the command says otherwise: see its Exit).
func run(args []string, stdout, stderr io.Writer) int {
	return agentProgram().Run(args, stdout, stderr)
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	if !cli.NoArgs(flag.NewFlagSet("version", flag.ContinueOnError), args, stderr, "keel-agent version") {
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
