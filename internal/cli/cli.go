// Package cli holds the command-line steps keel-relay and keel-agent share: parsing a
// command's flags with errors on stderr, and refusing arguments after them.
package cli

import (
	"flag"
	"fmt"
	"io"
)

// Parse parses args into fs, flag errors (and -h) going to stderr, and reports whether
// they parsed; a command that gets false exits 2.
func Parse(fs *flag.FlagSet, args []string, stderr io.Writer) bool {
	fs.SetOutput(stderr)
	return fs.Parse(args) == nil
}

// NoArgs parses args into fs like Parse and also refuses any argument left after the
// flags, saying on stderr `<what>: unexpected argument "ARG"`; what is the command, such
// as "keel-relay run". It reports whether the command line is good; a command that gets
// false exits 2.
func NoArgs(fs *flag.FlagSet, args []string, stderr io.Writer, what string) bool {
	if !Parse(fs, args, stderr) {
		return false
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", what, fs.Arg(0))
		return false
	}
	return true
}
