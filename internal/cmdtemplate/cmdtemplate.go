// Package cmdtemplate expands the command templates of Keel's configuration: argv lists,
// never shell strings, whose arguments hold placeholders such as {classes}. keel-relay's
// remote_run.command ({hostname}, {node_id}, {classes}) and the agent's
// edge.tools.agent_run.command ({classes}) are expanded here, with one rule;
// confload.CheckCommandArg checks them when the configuration is loaded.
package cmdtemplate

import (
	"slices"
	"strings"
)

// The placeholders of the command templates, written with their braces.
const (
	Hostname = "{hostname}" // the node's hostname (remote_run.command)
	NodeID   = "{node_id}"  // the node's id (remote_run.command)
	Classes  = "{classes}"  // the comma-separated class list of the run
)

// Expand fills the placeholders of template with values (placeholder, with its braces, to
// its value), inside every argument. An argument that is exactly one placeholder and
// expands to nothing is dropped, together with the option flag just before it (an
// argument starting with "-", other than "-" and "--"): with no classes,
// ["rudder", "remote", "run", "-D", "{classes}", "--", "h"] becomes
// ["rudder", "remote", "run", "--", "h"]. The program (template[0]) is never dropped, nor
// is a flag that is the program. A "{...}" that is not a key of values stays as it is.
func Expand(template []string, values map[string]string) []string {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys) // placeholders are "{name}": none is a prefix of another, order is moot
	pairs := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		pairs = append(pairs, k, values[k])
	}
	repl := strings.NewReplacer(pairs...)
	argv := make([]string, 0, len(template))
	for i, arg := range template {
		if v, isPlaceholder := values[arg]; isPlaceholder && v == "" && i > 0 {
			if n := len(argv); n > 1 && isFlag(argv[n-1]) {
				argv = argv[:n-1]
			}
			continue
		}
		argv = append(argv, repl.Replace(arg))
	}
	return argv
}

// isFlag reports whether arg is an option flag: it starts with "-" and is neither "-" (a
// file name for standard input) nor "--" (the end of the options).
func isFlag(arg string) bool { return strings.HasPrefix(arg, "-") && arg != "--" && arg != "-" }
