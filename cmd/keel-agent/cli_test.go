package main

import (
	"flag"
	"testing"

	"github.com/keel-relay/keel/internal/cli/clitest"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/ and the man page")

// TestHelpEveryCommand: --help, -h and help COMMAND exit 0 with the usage on stdout for
// every command and subcommand of the table.
func TestHelpEveryCommand(t *testing.T) {
	clitest.CheckHelp(t, agentProgram(), run)
}

// TestGenerated: the completion scripts (testdata) and the man page (packaging) are what
// the command table generates (go test ./cmd/keel-agent -run TestGenerated -update, or
// make man, rewrites them).
func TestGenerated(t *testing.T) {
	p := agentProgram()
	clitest.CheckGenerated(t, map[string]string{
		"testdata/completion.bash":     p.Bash(),
		"testdata/completion.zsh":      p.Zsh(),
		"../../packaging/keel-agent.1": p.ManPage(),
	}, *updateGolden, "run make man")
}
