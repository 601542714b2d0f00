// Package cli is the command line keel-relay and keel-agent share: the command table
// (Program, Command) their dispatch, --help, shell completion and man pages are made
// from; parsing a command's flags (interleaved with its arguments) with errors on stderr;
// and the --config flag with its default file.
package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
)

// Parse parses args into fs, flags and arguments in any order (flags may follow the
// arguments; after "--" everything is an argument), and reports whether they parsed; a
// command that gets false exits 2. A flag error is said on stderr in one line (the
// program adds the hint to --help). Called by Command.Flags' probe, it records fs and
// returns false without parsing.
func Parse(fs *flag.FlagSet, args []string, stderr io.Writer) bool {
	if p, ok := stderr.(*flagProbe); ok {
		p.fs = fs
		return false
	}
	// The flag package's own message and usage dump are replaced by one line naming the
	// command (the flag set's name, such as "edge ls").
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
			return false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	// Leave the arguments where fs.Args finds them: after a "--", nothing is a flag.
	return fs.Parse(append([]string{"--"}, positional...)) == nil
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

// ConfigFlag registers --config on fs and returns the loader a command calls once fs is
// parsed. The loader loads the file --config names (explicit: it must exist), else
// defaultPath() when that file exists, else the embedded default (load gets ""); it
// returns the config, the file it came from ("" for the embedded default) and whether
// --config named it. defaultPath and load are the command's config package's DefaultPath
// and Load.
func ConfigFlag[C any](fs *flag.FlagSet, defaultPath func() string, load func(path string, explicit bool) (C, error)) func() (C, string, bool, error) {
	path := fs.String("config", "", "config `FILE` (default "+defaultPath()+" if it exists)")
	return func() (C, string, bool, error) {
		p, explicit := *path, *path != ""
		if !explicit {
			p = defaultPath()
			if _, err := os.Stat(p); err != nil {
				p = ""
			}
		}
		cfg, err := load(p, explicit)
		return cfg, p, explicit, err
	}
}
