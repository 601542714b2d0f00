package remoterun

import (
	"reflect"
	"strings"
	"testing"
)

var rudderDefault = []string{"/opt/rudder/bin/rudder", "remote", "run", "-D", "{classes}", "--", "{hostname}"}

func TestExpandCommand(t *testing.T) {
	tests := []struct {
		name     string
		template []string
		host, id string
		classes  []string
		want     []string
	}{
		{"default with classes", rudderDefault, "node1.example", "n1", []string{"a", "b"},
			[]string{"/opt/rudder/bin/rudder", "remote", "run", "-D", "a,b", "--", "node1.example"}},
		{"default without classes drops -D", rudderDefault, "node1.example", "n1", nil,
			[]string{"/opt/rudder/bin/rudder", "remote", "run", "--", "node1.example"}},
		{"-- is kept when what follows is empty", []string{"prog", "--", "{classes}"}, "h", "n", nil,
			[]string{"prog", "--"}},
		{"no flag before an empty placeholder", []string{"prog", "x", "{classes}", "y"}, "h", "n", nil,
			[]string{"prog", "x", "y"}},
		{"placeholders inside arguments", []string{"prog", "--host={hostname}", "id:{node_id}", "-c{classes}"}, "h", "n", nil,
			[]string{"prog", "--host=h", "id:n", "-c"}},
		{"shell characters stay one argument", []string{"prog", "{hostname}"}, "h; rm -rf /", "n", nil,
			[]string{"prog", "h; rm -rf /"}},
		{"program never dropped", []string{"-weird", "{classes}"}, "h", "n", nil, []string{"-weird"}},
		{"node id", []string{"prog", "-n", "{node_id}"}, "h", "root", nil, []string{"prog", "-n", "root"}},
		{"empty hostname drops its flag", []string{"prog", "-H", "{hostname}", "-c", "{classes}"}, "", "n", []string{"x"},
			[]string{"prog", "-c", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ExpandCommand(tt.template, tt.host, tt.id, tt.classes)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ExpandCommand = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzExpandCommand(f *testing.F) {
	f.Add("/bin/prog\x00-D\x00{classes}\x00--\x00{hostname}", "host", "id", "a,b")
	f.Add("p\x00{node_id}{hostname}", "", "", "")
	f.Fuzz(func(t *testing.T, template, host, id, classes string) {
		tmpl := strings.Split(template, "\x00")
		if tmpl[0] == "" {
			return
		}
		var cl []string
		if classes != "" {
			cl = strings.Split(classes, ",")
		}
		argv := ExpandCommand(tmpl, host, id, cl)
		if len(argv) == 0 || len(argv) > len(tmpl) {
			t.Fatalf("ExpandCommand(%q) = %q", tmpl, argv)
		}
	})
}
