// Package cli holds the command-line steps keel-relay and keel-agent share: parsing a
// command's flags with errors on stderr, refusing arguments after them, and the --config
// flag with its default file.
package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
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

// ConfigFlag registers --config on fs and returns the loader a command calls once fs is
// parsed. The loader loads the file --config names (explicit: it must exist), else
// defaultPath() when that file exists, else the embedded default (load gets ""); it
// returns the config, the file it came from ("" for the embedded default) and whether
// --config named it. defaultPath and load are the command's config package's DefaultPath
// and Load.
func ConfigFlag[C any](fs *flag.FlagSet, defaultPath func() string, load func(path string, explicit bool) (C, error)) func() (C, string, bool, error) {
	path := fs.String("config", "", "config file (default "+defaultPath()+" if it exists)")
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
