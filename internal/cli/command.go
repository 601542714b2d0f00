package cli

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Exit codes every command shares; a command documents any other meaning in
// Command.Exit.
const (
	ExitOK      = 0 // success
	ExitFailure = 1 // the command ran and failed
	ExitUsage   = 2 // bad command line: unknown command or flag, missing argument
)

// ExitCode documents one exit status of a program or a command.
type ExitCode struct {
	Code    int
	Meaning string
}

// Command is one entry of a program's command table: help text, shell completion and the
// man page are all made from it. A command either runs (Run) or groups subcommands (Sub),
// or both: a group's Run gets the arguments no subcommand or help took.
type Command struct {
	Name    string // as typed: "backup", "enroll-token"
	Args    string // synopsis after the name, such as "[--config FILE] FILE"
	Summary string // one line for command lists
	Help    string // paragraphs for --help and the man page (optional)
	// Run executes the command with the arguments after its name and returns the exit
	// code. It parses its flags with Parse or NoArgs before doing anything else: help,
	// completion and the man page learn its flags by calling it (see Flags).
	Run     func(args []string, stdout, stderr io.Writer) int
	Sub     []*Command
	NoFlags bool       // Run parses no flags (it is never called to learn them)
	Hidden  bool       // left out of help, completion and the man page
	Exit    []ExitCode // exit statuses with a meaning other than the program's
}

// Program is a command-line program: its name and its command table.
type Program struct {
	Name     string // "keel-relay"
	Summary  string // one line: "the Keel relay daemon"
	Footer   string // text after the command list in --help
	Commands []*Command
	Exit     []ExitCode // the program's exit statuses (ExitCodes when empty)
	Man      Man        // the rest of the man page
}

// ExitCodes are the exit statuses of a program that documents no others.
var ExitCodes = []ExitCode{
	{ExitOK, "success"},
	{ExitFailure, "failure (the reason is on standard error)"},
	{ExitUsage, "usage error: unknown command or flag, missing or extra argument"},
}

// flagProbe is the stderr Flags passes to a command's Run: Parse records the flag set it
// gets instead of parsing, and the command returns without doing anything.
type flagProbe struct{ fs *flag.FlagSet }

func (*flagProbe) Write(b []byte) (int, error) { return len(b), nil }

// Flags returns the flag set c's Run parses, learnt by calling Run with a probe that
// makes Parse return false at once; nil for a command without flags or without Run.
func (c *Command) Flags() *flag.FlagSet {
	if c.Run == nil || c.NoFlags {
		return nil
	}
	p := &flagProbe{}
	c.Run(nil, io.Discard, p)
	return p.fs
}

// exit2IsUsage reports whether exit status 2 of c means a usage error (it does unless
// c.Exit gives 2 another meaning).
func (c *Command) exit2IsUsage() bool {
	return !slices.ContainsFunc(c.Exit, func(e ExitCode) bool { return e.Code == ExitUsage && e.Meaning != ExitCodes[ExitUsage].Meaning })
}

func (c *Command) find(name string) *Command {
	for _, s := range c.Sub {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// root is the program as a command whose subcommands are the table plus the built-in
// help and completion commands and the hidden man command.
func (p *Program) root() *Command {
	r := &Command{Name: p.Name, Sub: slices.Clone(p.Commands)}
	r.Sub = append(r.Sub,
		&Command{Name: "help", Args: "[COMMAND ...]", Summary: "print the help of the program or of a command", NoFlags: true},
		&Command{Name: "completion", Args: "bash|zsh", Summary: "print the shell completion script",
			Help: "Prints a completion script for bash or zsh on standard output; the packages install both.\n" +
				"Try it with: source <(" + p.Name + " completion bash)",
			NoFlags: true, Sub: []*Command{
				{Name: "bash", Summary: "bash completion script", NoFlags: true,
					Run: func(_ []string, stdout, _ io.Writer) int { fmt.Fprint(stdout, p.Bash()); return ExitOK }},
				{Name: "zsh", Summary: "zsh completion script", NoFlags: true,
					Run: func(_ []string, stdout, _ io.Writer) int { fmt.Fprint(stdout, p.Zsh()); return ExitOK }},
			}},
		&Command{Name: "man", Summary: "print the man page (roff)", Hidden: true, NoFlags: true,
			Run: func(_ []string, stdout, _ io.Writer) int { fmt.Fprint(stdout, p.ManPage()); return ExitOK }},
	)
	return r
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "-help" }

// wantsHelp reports whether args ask for help before any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if isHelp(a) {
			return true
		}
	}
	return false
}

// Run executes the command line args (without the program name) and returns the exit
// code. --help, -h or `help` anywhere in a command path prints that command's help on
// stdout (exit 0); an unknown command or a command's usage error exits 2 with a hint on
// stderr.
func (p *Program) Run(args []string, stdout, stderr io.Writer) int {
	root := p.root()
	if len(args) == 0 {
		fmt.Fprint(stderr, p.Help(nil))
		return ExitUsage
	}
	if (args[0] == "--version" || args[0] == "-v") && root.find("version") != nil {
		args = append([]string{"version"}, args[1:]...)
	}
	if args[0] == "help" {
		if wantsHelp(args[1:]) {
			args = []string{"help", "help"}
		}
		path, ok := p.lookup(root, args[1:], stderr)
		if !ok {
			return ExitUsage
		}
		fmt.Fprint(stdout, p.Help(path))
		return ExitOK
	}
	var path []*Command
	cmd := root
	for {
		if len(args) > 0 && len(cmd.Sub) > 0 {
			if sub := cmd.find(args[0]); sub != nil {
				path, cmd, args = append(path, sub), sub, args[1:]
				continue
			}
		}
		break
	}
	if wantsHelp(args) || len(args) > 0 && args[0] == "help" && len(cmd.Sub) > 0 {
		fmt.Fprint(stdout, p.Help(path))
		return ExitOK
	}
	if cmd.Run == nil {
		switch {
		case len(args) == 0:
			fmt.Fprintf(stderr, "%s: missing command\n", p.usageName(path))
		case strings.HasPrefix(args[0], "-"):
			fmt.Fprintf(stderr, "%s: the command comes before the flags, got %q\n", p.usageName(path), args[0])
		case len(path) == 0:
			fmt.Fprintf(stderr, "%s: unknown command %q\n", p.Name, args[0])
		default:
			fmt.Fprintf(stderr, "%s: unknown subcommand %q\n", p.usageName(path), args[0])
		}
		fmt.Fprintln(stderr, p.hint(path))
		return ExitUsage
	}
	code := cmd.Run(args, stdout, stderr)
	if code == ExitUsage && cmd.exit2IsUsage() {
		fmt.Fprintln(stderr, p.hint(path))
	}
	return code
}

// lookup resolves the command names of `help NAME ...`.
func (p *Program) lookup(root *Command, names []string, stderr io.Writer) ([]*Command, bool) {
	var path []*Command
	cmd := root
	for _, n := range names {
		sub := cmd.find(n)
		if sub == nil {
			fmt.Fprintf(stderr, "%s help: unknown command %q\n%s\n", p.Name, strings.Join(names, " "), p.hint(nil))
			return nil, false
		}
		path, cmd = append(path, sub), sub
	}
	return path, true
}

// usageName is "PROGRAM CMD SUB" for path.
func (p *Program) usageName(path []*Command) string {
	parts := []string{p.Name}
	for _, c := range path {
		parts = append(parts, c.Name)
	}
	return strings.Join(parts, " ")
}

// hint is the one line a usage error ends with.
func (p *Program) hint(path []*Command) string {
	return fmt.Sprintf("Run '%s --help' for usage.", p.usageName(path))
}

// Paths returns the name path of every visible command and subcommand of the program,
// built-in ones included, depth first: [["run"], ["edge"], ["edge", "ls"], ...].
func (p *Program) Paths() [][]string {
	var out [][]string
	var walk func(prefix []string, cs []*Command)
	walk = func(prefix []string, cs []*Command) {
		for _, c := range visible(cs) {
			path := append(append([]string(nil), prefix...), c.Name)
			out = append(out, path)
			walk(path, c.Sub)
		}
	}
	walk(nil, p.root().Sub)
	return out
}

// Undocumented returns the path of every runnable command whose flags help cannot learn:
// its Run does not parse them with Parse or NoArgs first, and it is not marked NoFlags.
func (p *Program) Undocumented() []string {
	var out []string
	leaves(nil, p.root().Sub, func(names []string, c *Command) {
		if c.Run != nil && !c.NoFlags && c.Flags() == nil {
			out = append(out, strings.Join(names, " "))
		}
	})
	return out
}
