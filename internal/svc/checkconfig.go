package svc

import (
	"flag"
	"fmt"
	"io"

	"github.com/keel-relay/keel/internal/cli"
)

// Config is what CheckConfig needs of a command's config: its effective values as YAML.
type Config interface {
	YAML() ([]byte, error)
}

// CheckConfigCommand runs `NAME check-config [--config FILE]` up to the command's own
// notes: configFlags registers --config on the flag set and returns its loader; no
// argument may follow the flags (exit 2); then the config is loaded and checked
// (CheckConfig). It returns the loaded config and 0 when it is valid, else the exit code.
func CheckConfigCommand[C Config](args []string, stdout, stderr io.Writer, name, env string, configFlags func(*flag.FlagSet) func() (C, string, bool, error)) (C, int) {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	load := configFlags(fs)
	if !cli.NoArgs(fs, args, stderr, name+" check-config") {
		var none C
		return none, 2
	}
	cfg, path, _, err := load()
	return cfg, CheckConfig(stdout, stderr, name, env, cfg, path, err)
}

// CheckConfig is what `keel-relay check-config` and `keel-agent check-config` share: given
// the result of loading the config (from path, "" for the embedded default), it says on
// stderr why the config is not valid and returns 1, or prints on stdout a comment line (the
// config is valid, where it came from, which environment variables, env, override it) and
// the effective config as YAML, and returns 0. name is the command, such as "keel-relay".
func CheckConfig(stdout, stderr io.Writer, name, env string, cfg Config, path string, loadErr error) int {
	if loadErr != nil {
		fmt.Fprintf(stderr, "%s: config is not valid:\n%v\n", name, loadErr)
		return 1
	}
	out, err := cfg.YAML()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	source := "embedded default"
	if path != "" {
		source = path
	}
	fmt.Fprintf(stdout, "# config OK (%s, with %s environment overrides)\n%s", source, env, out)
	return 0
}
