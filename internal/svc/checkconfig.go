package svc

import (
	"fmt"
	"io"
)

// Config is what CheckConfig needs of a command's config: its effective values as YAML.
type Config interface {
	YAML() ([]byte, error)
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
