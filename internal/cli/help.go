package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// visible returns the commands of cs that help, completion and the man page show.
func visible(cs []*Command) []*Command {
	var out []*Command
	for _, c := range cs {
		if !c.Hidden {
			out = append(out, c)
		}
	}
	return out
}

// leaves calls f for every visible runnable command under cs (depth first, in table
// order) with its path of names; a group that also runs is listed before its subcommands.
func leaves(prefix []string, cs []*Command, f func(names []string, c *Command)) {
	for _, c := range visible(cs) {
		names := append(append([]string(nil), prefix...), c.Name)
		if c.Run != nil || len(c.Sub) == 0 {
			f(names, c)
		}
		leaves(names, c.Sub, f)
	}
}

// synopsis is "NAMES ARGS".
func synopsis(names []string, c *Command) string {
	s := strings.Join(names, " ")
	if c.Args != "" {
		s += " " + c.Args
	}
	return s
}

// Help returns the help text of the command at path (the program's for an empty path).
func (p *Program) Help(path []*Command) string {
	var b strings.Builder
	if len(path) == 0 {
		fmt.Fprintf(&b, "%s — %s\n\nUsage:\n", p.Name, p.Summary)
		leaves([]string{p.Name}, p.root().Sub, func(names []string, c *Command) {
			fmt.Fprintf(&b, "  %s\n      %s\n", synopsis(names, c), c.Summary)
		})
		if p.Footer != "" {
			fmt.Fprintf(&b, "\n%s", p.Footer)
		}
		writeExit(&b, p.exitCodes())
		fmt.Fprintf(&b, "\nRun '%s COMMAND --help' (or '%s help COMMAND') for a command's flags.\n", p.Name, p.Name)
		return b.String()
	}
	cmd := path[len(path)-1]
	name := p.usageName(path)
	args := cmd.Args
	if args == "" && len(cmd.Sub) > 0 {
		args = "COMMAND ..."
	}
	fmt.Fprintf(&b, "Usage: %s\n\n", strings.TrimSpace(name+" "+args))
	text := cmd.Help
	if text == "" {
		text = upperFirst(cmd.Summary) + "."
	}
	fmt.Fprintf(&b, "%s\n", strings.TrimRight(text, "\n"))
	if subs := visible(cmd.Sub); len(subs) > 0 {
		b.WriteString("\nCommands:\n")
		for _, s := range subs {
			fmt.Fprintf(&b, "  %s\n      %s\n", synopsis([]string{s.Name}, s), s.Summary)
		}
	}
	if fs := cmd.Flags(); fs != nil {
		b.WriteString("\nFlags:\n")
		writeFlags(&b, fs)
	}
	if len(cmd.Exit) > 0 {
		writeExit(&b, cmd.Exit)
	}
	if len(cmd.Sub) > 0 {
		fmt.Fprintf(&b, "\nRun '%s COMMAND --help' for a command's flags.\n", name)
	}
	return b.String()
}

func (p *Program) exitCodes() []ExitCode {
	if len(p.Exit) > 0 {
		return p.Exit
	}
	return ExitCodes
}

func writeExit(w io.Writer, codes []ExitCode) {
	fmt.Fprint(w, "\nExit status:\n")
	for _, e := range codes {
		fmt.Fprintf(w, "  %d  %s\n", e.Code, e.Meaning)
	}
}

// flagInfo is one flag as help, completion and the man page show it.
type flagInfo struct {
	name, arg, usage, def string
}

// flagList lists the flags of fs by name, with -h/--help last.
func flagList(fs *flag.FlagSet) []flagInfo {
	var out []flagInfo
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		def := f.DefValue
		switch def {
		case "", "0", "false", "0s", "[]":
			def = ""
		}
		if strings.Contains(usage, "(default") {
			def = ""
		}
		switch arg {
		case "string":
			arg = "value"
		case "int", "uint", "int64", "uint64", "float":
			arg = "n"
		}
		out = append(out, flagInfo{name: f.Name, arg: strings.ToUpper(arg), usage: usage, def: def})
	})
	return append(out, flagInfo{name: "help", usage: "print this help and exit"})
}

func writeFlags(w io.Writer, fs *flag.FlagSet) {
	for _, f := range flagList(fs) {
		line := "  --" + f.name
		if f.name == "help" {
			line = "  -h, --help"
		}
		if f.arg != "" {
			line += " " + f.arg
		}
		usage := f.usage
		if f.def != "" {
			usage += " (default " + f.def + ")"
		}
		fmt.Fprintf(w, "%s\n        %s\n", line, usage)
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
