package remoterun

import (
	"strings"

	"github.com/keel-relay/keel/internal/cmdtemplate"
)

// The placeholders of remote_run.command (cmdtemplate's).
const (
	PlaceholderHostname = cmdtemplate.Hostname
	PlaceholderNodeID   = cmdtemplate.NodeID
	PlaceholderClasses  = cmdtemplate.Classes
)

// ExpandCommand fills the placeholders of a command template for one node with
// cmdtemplate.Expand. An argument that is exactly one placeholder and expands to nothing is
// dropped, together with the option flag just before it (an argument starting with "-",
// other than "-" and "--"): with no classes, ["rudder", "remote", "run", "-D", "{classes}",
// "--", "h"] becomes ["rudder", "remote", "run", "--", "h"]. The program itself is never
// dropped (the config refuses a placeholder there).
func ExpandCommand(template []string, hostname, nodeID string, classes []string) []string {
	return cmdtemplate.Expand(template, map[string]string{
		PlaceholderHostname: hostname,
		PlaceholderNodeID:   nodeID,
		PlaceholderClasses:  strings.Join(classes, ","),
	})
}
