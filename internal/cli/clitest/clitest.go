// Package clitest checks a program's command table from its tests: every command's
// --help, and the committed completion scripts and man page against what the table
// generates.
package clitest

import (
	"bytes"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/keel-relay/keel/internal/cli"
)

// Run is a program's run function: arguments without the program name, the exit code.
type Run func(args []string, stdout, stderr io.Writer) int

// CheckHelp runs `COMMAND --help`, `COMMAND -h` and `help COMMAND` for every command and
// subcommand of p through run: each must exit 0 with its usage on stdout and nothing on
// stderr. It also fails for a command whose flags help cannot learn.
func CheckHelp(t *testing.T, p *cli.Program, run Run) {
	t.Helper()
	for _, u := range p.Undocumented() {
		t.Errorf("%s %s: Run does not parse its flags with cli.Parse or cli.NoArgs first (or mark it NoFlags)", p.Name, u)
	}
	for _, path := range p.Paths() {
		name := strings.Join(path, " ")
		for _, args := range [][]string{
			append(append([]string(nil), path...), "--help"),
			append(append([]string(nil), path...), "-h"),
			append([]string{"help"}, path...),
		} {
			var stdout, stderr bytes.Buffer
			code := run(args, &stdout, &stderr)
			if code != 0 || stderr.Len() != 0 || !strings.HasPrefix(stdout.String(), "Usage: "+p.Name+" "+name) {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q; want 0 and the usage of %q",
					p.Name, strings.Join(args, " "), code, stdout.String(), stderr.String(), name)
			}
		}
	}
}

// CheckGenerated compares the committed files (path → content generated now) and, with
// update, rewrites them.
func CheckGenerated(t *testing.T, files map[string]string, update bool, regenerate string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the committed files are generated on Linux (the default config path differs)")
	}
	for path, want := range files {
		if update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (%s)", err, regenerate)
			continue
		}
		if string(got) != want {
			t.Errorf("%s is not what the command table generates: %s", path, regenerate)
		}
	}
}
