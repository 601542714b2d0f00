package cmdtemplate

import (
	"reflect"
	"strings"
	"testing"
)

var rudderRemote = []string{"/opt/rudder/bin/rudder", "remote", "run", "-D", Classes, "--", Hostname}

func TestExpand(t *testing.T) {
	node := func(host, id, classes string) map[string]string {
		return map[string]string{Hostname: host, NodeID: id, Classes: classes}
	}
	agent := func(classes string) map[string]string { return map[string]string{Classes: classes} }
	tests := []struct {
		name     string
		template []string
		values   map[string]string
		want     []string
	}{
		// keel-relay's remote_run.command
		{"remote run with classes", rudderRemote, node("node1.example", "n1", "a,b"),
			[]string{"/opt/rudder/bin/rudder", "remote", "run", "-D", "a,b", "--", "node1.example"}},
		{"remote run without classes drops -D", rudderRemote, node("node1.example", "n1", ""),
			[]string{"/opt/rudder/bin/rudder", "remote", "run", "--", "node1.example"}},
		{"-- is kept when what follows is empty", []string{"prog", "--", Classes}, node("h", "n", ""),
			[]string{"prog", "--"}},
		{"- is kept when what follows is empty", []string{"prog", "-", Classes}, node("h", "n", ""),
			[]string{"prog", "-"}},
		{"no flag before an empty placeholder", []string{"prog", "x", Classes, "y"}, node("h", "n", ""),
			[]string{"prog", "x", "y"}},
		{"placeholders inside arguments", []string{"prog", "--host={hostname}", "id:{node_id}", "-c{classes}"}, node("h", "n", ""),
			[]string{"prog", "--host=h", "id:n", "-c"}},
		{"shell characters stay one argument", []string{"prog", Hostname}, node("h; rm -rf /", "n", ""),
			[]string{"prog", "h; rm -rf /"}},
		{"program never dropped", []string{"-weird", Classes}, node("h", "n", ""), []string{"-weird"}},
		{"node id", []string{"prog", "-n", NodeID}, node("h", "root", ""), []string{"prog", "-n", "root"}},
		{"empty hostname drops its flag", []string{"prog", "-H", Hostname, "-c", Classes}, node("", "n", "x"),
			[]string{"prog", "-c", "x"}},
		// the agent's edge.tools.agent_run.command: only {classes}
		{"agent run with classes", []string{"rudder", "agent", "run", "-D", Classes}, agent("a,b"),
			[]string{"rudder", "agent", "run", "-D", "a,b"}},
		{"agent run without classes", []string{"rudder", "agent", "run", "-D", Classes}, agent(""),
			[]string{"rudder", "agent", "run"}},
		{"placeholder inside an argument is kept empty", []string{"run", "--classes={classes}"}, agent(""),
			[]string{"run", "--classes="}},
		{"agent: -- kept", []string{"run", "--", Classes}, agent(""), []string{"run", "--"}},
		{"flag after the placeholder kept", []string{"run", Classes, "-v"}, agent(""), []string{"run", "-v"}},
		{"placeholder twice in an argument", []string{"run", "x{classes}y{classes}"}, agent("c"), []string{"run", "xcyc"}},
		{"program is a flag", []string{"-D", Classes}, agent(""), []string{"-D"}},
		{"placeholder not in values stays", []string{"run", Hostname, "{other}"}, agent(""), []string{"run", Hostname, "{other}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Expand(tt.template, tt.values); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Expand(%q, %q) = %q, want %q", tt.template, tt.values, got, tt.want)
			}
		})
	}
}

func FuzzExpand(f *testing.F) {
	f.Add("/bin/prog\x00-D\x00{classes}\x00--\x00{hostname}", "host", "id", "a,b")
	f.Add("p\x00{node_id}{hostname}", "", "", "")
	f.Add("-D\x00{classes}\x00-\x00{node_id}", "", "", "")
	f.Fuzz(func(t *testing.T, template, host, id, classes string) {
		tmpl := strings.Split(template, "\x00")
		argv := Expand(tmpl, map[string]string{Hostname: host, NodeID: id, Classes: classes})
		if len(argv) == 0 || len(argv) > len(tmpl) || argv[0] != strings.NewReplacer(Classes, classes, Hostname, host, NodeID, id).Replace(tmpl[0]) {
			t.Fatalf("Expand(%q) = %q", tmpl, argv)
		}
	})
}
