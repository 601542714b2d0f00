package cli

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testProgram is a small command table: a leaf with flags and an argument, a group, a
// command whose exit 2 is not a usage error, and one without flags.
func testProgram(ran *[]string) *Program {
	leaf := func(name string, nargs int) func(args []string, stdout, stderr io.Writer) int {
		return func(args []string, stdout, stderr io.Writer) int {
			fs := flag.NewFlagSet(name, flag.ContinueOnError)
			v := fs.Bool("verbose", false, "say more")
			cfg := fs.String("config", "", "config `FILE`")
			if !Parse(fs, args, stderr) {
				return ExitUsage
			}
			if fs.NArg() != nargs {
				fmt.Fprintf(stderr, "%s: want %d arguments\n", name, nargs)
				return ExitUsage
			}
			*ran = append(*ran, fmt.Sprintf("%s verbose=%v config=%s args=%q", name, *v, *cfg, fs.Args()))
			return ExitOK
		}
	}
	return &Program{
		Name: "prog", Summary: "a test program", Man: Man{Title: "test program", Description: "Tests.\n"},
		Commands: []*Command{
			{Name: "copy", Args: "[--verbose] SRC DST", Summary: "copy SRC to DST", Help: "Copies.\n\n  indented list\n  kept as is", Run: leaf("copy", 2)},
			{Name: "group", Summary: "a group", Sub: []*Command{
				{Name: "one", Args: "ARG", Summary: "the first", Run: leaf("group one", 1)},
				{Name: "two", Summary: "the second", Run: leaf("group two", 0)},
			}},
			{Name: "probe", Summary: "exit 2 is not a usage error", Run: leaf("probe", 0),
				Exit: []ExitCode{{0, "yes"}, {1, "no"}, {2, "error"}}},
			{Name: "version", Summary: "print the version", NoFlags: true,
				Run: func(_ []string, stdout, _ io.Writer) int { fmt.Fprintln(stdout, "prog 1"); return ExitOK }},
			{Name: "secret", Summary: "hidden", Hidden: true, NoFlags: true, Run: func([]string, io.Writer, io.Writer) int { return 7 }},
		},
	}
}

func TestProgramRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // must contain
		stderr string // must contain ("" = must be empty)
		ran    string // what the command saw
	}{
		{"no command", nil, 2, "", "Usage:", ""},
		{"help", []string{"help"}, 0, "prog copy [--verbose] SRC DST", "", ""},
		{"--help", []string{"--help"}, 0, "prog group one ARG", "", ""},
		{"-h", []string{"-h"}, 0, "Exit status:", "", ""},
		{"help of a command", []string{"help", "copy"}, 0, "Usage: prog copy [--verbose] SRC DST", "", ""},
		{"help of a subcommand", []string{"help", "group", "one"}, 0, "Usage: prog group one ARG", "", ""},
		{"help of an unknown command", []string{"help", "nope"}, 2, "", `prog help: unknown command "nope"`, ""},
		{"--help after a command", []string{"copy", "--help"}, 0, "--config FILE", "", ""},
		{"-h after arguments", []string{"copy", "a", "-h"}, 0, "--verbose", "", ""},
		{"--help after --", []string{"copy", "--", "--help", "x"}, 0, "", "", `copy verbose=false config= args=["--help" "x"]`},
		{"group --help", []string{"group", "--help"}, 0, "Commands:\n  one ARG", "", ""},
		{"group help", []string{"group", "help"}, 0, "two", "", ""},
		{"subcommand -h", []string{"group", "two", "-h"}, 0, "Usage: prog group two", "", ""},
		{"flags after arguments", []string{"copy", "a", "--verbose", "b", "--config", "c"}, 0, "", "", `copy verbose=true config=c args=["a" "b"]`},
		{"flags interleaved, = form", []string{"copy", "--config=c", "a", "b", "-verbose"}, 0, "", "", `copy verbose=true config=c args=["a" "b"]`},
		{"- is an argument", []string{"copy", "-", "b"}, 0, "", "", `copy verbose=false config= args=["-" "b"]`},
		{"subcommand runs", []string{"group", "one", "x", "--verbose"}, 0, "", "", `group one verbose=true config= args=["x"]`},
		{"unknown command", []string{"nope"}, 2, "", "prog: unknown command \"nope\"\nRun 'prog --help' for usage.\n", ""},
		{"unknown subcommand", []string{"group", "nope"}, 2, "", "prog group: unknown subcommand \"nope\"\nRun 'prog group --help' for usage.\n", ""},
		{"missing subcommand", []string{"group"}, 2, "", "prog group: missing command\nRun 'prog group --help' for usage.\n", ""},
		{"flag before the subcommand", []string{"group", "--verbose", "one"}, 2, "", "prog group: the command comes before the flags, got \"--verbose\"\n", ""},
		{"flag before the command", []string{"--verbose"}, 2, "", "prog: the command comes before the flags, got \"--verbose\"\n", ""},
		{"unknown flag", []string{"copy", "--bogus", "a", "b"}, 2, "", "flag provided but not defined: -bogus\nRun 'prog copy --help' for usage.\n", ""},
		{"missing flag value", []string{"copy", "a", "b", "--config"}, 2, "", "flag needs an argument: -config\nRun 'prog copy --help' for usage.\n", ""},
		{"command's own usage error", []string{"copy", "a"}, 2, "", "copy: want 2 arguments\nRun 'prog copy --help' for usage.\n", ""},
		{"exit 2 that is not a usage error: no hint", []string{"probe", "x"}, 2, "", "probe: want 0 arguments\n", ""},
		{"--version", []string{"--version"}, 0, "prog 1", "", ""},
		{"completion without a shell", []string{"completion"}, 2, "", "prog completion: missing command", ""},
		{"completion of an unknown shell", []string{"completion", "fish"}, 2, "", `unknown subcommand "fish"`, ""},
		{"hidden commands run", []string{"secret"}, 7, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ran []string
			var stdout, stderr bytes.Buffer
			code := testProgram(&ran).Run(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, tc.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) || tc.stdout == "" && stdout.Len() != 0 && tc.code != 0 {
				t.Errorf("stdout %q, want it to contain %q", stdout.String(), tc.stdout)
			}
			if tc.stderr == "" && stderr.Len() != 0 || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.stderr)
			}
			if got := strings.Join(ran, "; "); got != tc.ran {
				t.Errorf("ran %q, want %q", got, tc.ran)
			}
		})
	}
}

// TestHelpNeverRuns: help, completion and the man page learn the flags without running
// any command.
func TestHelpNeverRuns(t *testing.T) {
	var ran []string
	p := testProgram(&ran)
	_ = p.Help(nil)
	_ = p.Bash()
	_ = p.Zsh()
	man := p.ManPage()
	if len(ran) != 0 {
		t.Errorf("commands ran: %q", ran)
	}
	for _, want := range []string{".B prog group one\nARG\n", ".B \\-\\-config \\fIFILE\\fR\n", "\\fIFILE\\fR", ".nf\n  indented list\n  kept as is\n.fi\n", ".B 2\n"} {
		if !strings.Contains(man, want) {
			t.Errorf("man page lacks %q:\n%s", want, man)
		}
	}
	if strings.Contains(man, "secret") || strings.Contains(p.Help(nil), "secret") || strings.Contains(p.Bash(), "secret") {
		t.Error("a hidden command is shown")
	}
}

// TestBashCompletion sources the generated script in bash and completes command lines.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := filepath.Join(t.TempDir(), "prog.bash")
	if err := os.WriteFile(script, []byte(testProgram(new([]string)).Bash()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line []string // the words, the last one being completed
		want string
	}{
		{[]string{"prog", ""}, "copy group probe version help completion"},
		{[]string{"prog", "gr"}, "group"},
		{[]string{"prog", "group", ""}, "one two"},
		{[]string{"prog", "group", "one", "--"}, "--config --verbose --help"},
		{[]string{"prog", "copy", "a", "--v"}, "--verbose"},
		{[]string{"prog", "completion", ""}, "bash zsh"},
		{[]string{"prog", "-"}, "--help --version"},
	} {
		words := strings.Join(tc.line, "' '")
		cmd := exec.Command(bash, "--norc", "-c", fmt.Sprintf(`source %s; COMP_WORDS=('%s'); COMP_CWORD=%d; _prog; echo "${COMPREPLY[*]}"`,
			script, words, len(tc.line)-1))
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("complete %q: %q, %v; want %q", tc.line, out, err, tc.want)
		}
	}
}

func TestParseBadInput(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"--n"}, "flag needs an argument: -n"},
		{[]string{"a", "--n"}, "flag needs an argument: -n"},
		{[]string{"--n", "x"}, `invalid value "x" for flag -n`},
		{[]string{"a", "--n=x"}, `invalid value "x" for flag -n`},
		{[]string{"a", "---n", "1"}, "bad flag syntax: ---n"},
		{[]string{"a", "-=1"}, "bad flag syntax: -=1"},
		{[]string{"a", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"a", "-h"}, ""}, // help: the program prints it, Parse only refuses
	} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.Int("n", 0, "")
		var stderr bytes.Buffer
		if Parse(fs, tc.args, &stderr) {
			t.Errorf("Parse(%q) accepted", tc.args)
		}
		if !strings.Contains(stderr.String(), tc.stderr) || strings.Count(stderr.String(), "\n") > 1 {
			t.Errorf("Parse(%q) said %q, want one line with %q", tc.args, stderr.String(), tc.stderr)
		}
	}
}

// FuzzParse: Parse never panics, and what it accepts keeps the arguments in order.
func FuzzParse(f *testing.F) {
	f.Add("a\x00--n\x001\x00b")
	f.Add("--\x00-n\x00--")
	f.Add("-b=false\x00-\x00--n=3")
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.Int("n", 0, "")
		fs.Bool("b", false, "")
		if !Parse(fs, args, io.Discard) {
			return
		}
		// Every argument left is one of args, in order.
		i := 0
		for _, a := range fs.Args() {
			for i < len(args) && args[i] != a {
				i++
			}
			if i == len(args) {
				t.Fatalf("Parse(%q) left %q, not in order from the input", args, fs.Args())
			}
			i++
		}
	})
}

// TestZshCompletion loads the generated script in zsh, with the completion system's
// _describe, compadd and _files replaced by functions that print what they get.
func TestZshCompletion(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("no zsh")
	}
	script := filepath.Join(t.TempDir(), "_prog")
	if err := os.WriteFile(script, []byte(testProgram(new([]string)).Zsh()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line []string // the words, the last one being completed
		want string
	}{
		{[]string{"prog", ""}, "describe: copy:copy SRC to DST group:a group probe:exit 2 is not a usage error version:print the version help:print the help of the program or of a command completion:print the shell completion script"},
		{[]string{"prog", "group", ""}, "describe: one:the first two:the second"},
		{[]string{"prog", "group", "one", "--"}, "compadd: --config --verbose --help"},
		{[]string{"prog", "copy", "a", "--config", ""}, "files"},
		{[]string{"prog", "copy", "a", ""}, "files"},
		{[]string{"prog", "-"}, "compadd: --help --version"},
	} {
		stubs := `_describe() { shift 3; print -r -- "describe: ${(P)1}"; }
compadd() { shift; print -r -- "compadd: $*"; }
_files() { print -r -- files; }
`
		words := strings.Join(tc.line, "' '")
		cmd := exec.Command(zsh, "-f", "-c", fmt.Sprintf("source %s >/dev/null 2>&1\n%swords=('%s'); CURRENT=%d; _prog", script, stubs, words, len(tc.line)))
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("complete %q: %q, %v; want %q", tc.line, out, err, tc.want)
		}
	}
}
