package remoterun

import "strings"

// The placeholders of remote_run.command.
const (
	PlaceholderHostname = "{hostname}"
	PlaceholderNodeID   = "{node_id}"
	PlaceholderClasses  = "{classes}"
)

// ExpandCommand fills the placeholders of a command template for one node. An argument that is
// exactly one placeholder and expands to nothing is dropped, together with the option flag just
// before it (an argument starting with "-", other than "--"): with no classes,
// ["rudder", "remote", "run", "-D", "{classes}", "--", "h"] becomes
// ["rudder", "remote", "run", "--", "h"].
func ExpandCommand(template []string, hostname, nodeID string, classes []string) []string {
	values := map[string]string{
		PlaceholderHostname: hostname,
		PlaceholderNodeID:   nodeID,
		PlaceholderClasses:  strings.Join(classes, ","),
	}
	repl := strings.NewReplacer(
		PlaceholderHostname, values[PlaceholderHostname],
		PlaceholderNodeID, values[PlaceholderNodeID],
		PlaceholderClasses, values[PlaceholderClasses],
	)
	argv := make([]string, 0, len(template))
	for i, arg := range template {
		// The program itself is never dropped (the config refuses a placeholder there).
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

func isFlag(arg string) bool { return strings.HasPrefix(arg, "-") && arg != "--" && arg != "-" }
