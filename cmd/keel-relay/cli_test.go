package main

import (
	"testing"

	"github.com/keel-relay/keel/internal/cli/clitest"
)

// TestHelpEveryCommand: --help, -h and help COMMAND exit 0 with the usage on stdout for
// every command and subcommand of the table.
func TestHelpEveryCommand(t *testing.T) {
	clitest.CheckHelp(t, relayProgram(), run)
}

// TestGenerated: the completion scripts (testdata) and the man page (packaging) are what
// the command table generates (go test ./cmd/keel-relay -run TestGenerated -update, or
// make man, rewrites them).
func TestGenerated(t *testing.T) {
	p := relayProgram()
	clitest.CheckGenerated(t, map[string]string{
		"testdata/completion.bash":     p.Bash(),
		"testdata/completion.zsh":      p.Zsh(),
		"../../packaging/keel-relay.1": p.ManPage(),
	}, *updateGolden, "run make man")
}
