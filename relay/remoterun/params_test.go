package remoterun

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/keel-relay/keel/internal/wire/classlist"
)

func request(t testing.TB, query, body string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/rudder/relay-api/remote-run/nodes?"+query, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func TestParse(t *testing.T) {
	tests := []struct {
		name        string
		kind, node  string
		query, body string
		want        Params
	}{
		{"all defaults", "all", "", "", "", Params{All: true}},
		{"one node, Rudder web UI", "node", "n1", "", "classes=c1,c2&keep_output=true&asynchronous=false",
			Params{Nodes: []string{"n1"}, KeepOutput: true, Classes: []string{"c1", "c2"}}},
		{"post-generation hook", "nodes", "", "", "asynchronous=true&keep_output=false&nodes=id1,id2,id3",
			Params{Nodes: []string{"id1", "id2", "id3"}, Async: true}},
		{"query instead of body", "nodes", "", "nodes=a&keep_output=true", "",
			Params{Nodes: []string{"a"}, KeepOutput: true}},
		{"conditions wins over classes", "all", "", "", "classes=old&conditions=new1,new2",
			Params{All: true, Classes: []string{"new1", "new2"}}},
		{"empty conditions wins too", "all", "", "", "classes=old&conditions=", Params{All: true}},
		{"empty classes", "all", "", "", "classes=", Params{All: true}},
		{"spaces and empty items", "nodes", "", "", "nodes= a , ,b,a,&classes=x_1,,Y2",
			Params{Nodes: []string{"a", "b"}, Classes: []string{"x_1", "Y2"}}},
		{"nodes over several fields", "nodes", "", "", "nodes=a,b&nodes=c", Params{Nodes: []string{"a", "b", "c"}}},
		{"unknown parameters ignored", "all", "", "", "foo=bar", Params{All: true}},
		{"class of 1024 characters", "all", "", "", "classes=" + strings.Repeat("a", 1024),
			Params{All: true, Classes: []string{strings.Repeat("a", 1024)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(request(t, tt.query, tt.body), tt.kind, tt.node)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		name       string
		kind, node string
		body       string
		want       string
	}{
		{"keep_output not a bool", "all", "", "keep_output=yes", `keep_output: "yes" is not true or false`},
		{"keep_output empty", "all", "", "keep_output=", `keep_output: "" is not true or false`},
		{"keep_output capitalised", "all", "", "keep_output=True", `keep_output: "True" is not true or false`},
		{"asynchronous twice", "all", "", "asynchronous=true&asynchronous=false", "asynchronous: given 2 times"},
		{"class with a dash", "all", "", "classes=ok,bad-class", `classes: class "bad-class" does not match ^[A-Za-z0-9][A-Za-z0-9_]*$`},
		{"class starting with _", "all", "", "classes=_x", `classes: class "_x" does not match ^[A-Za-z0-9][A-Za-z0-9_]*$`},
		{"condition with a space", "all", "", "conditions=a+b", `conditions: class "a b" does not match ^[A-Za-z0-9][A-Za-z0-9_]*$`},
		{"class with shell", "all", "", "classes=a%3Brm", `classes: class "a;rm" does not match ^[A-Za-z0-9][A-Za-z0-9_]*$`},
		{"class too long", "all", "", "classes=" + strings.Repeat("a", 1025), "classes: class \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"... is 1025 characters long, at most 1024"},
		{"nodes missing", "nodes", "", "keep_output=true", "nodes: missing: give node ids separated by commas"},
		{"nodes empty", "nodes", "", "nodes=", "nodes: missing: give node ids separated by commas"},
		{"nodes only commas", "nodes", "", "nodes=,,", "nodes: no node id given"},
		{"node id with slash", "nodes", "", "nodes=a,../b", `nodes: invalid node id "../b"`},
		{"path node id", "node", "..", "", `node: invalid node id ".."`},
		{"bad form", "all", "", "a=%zz", "body: not a valid form"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(request(t, "", tt.body), tt.kind, tt.node)
			if err == nil {
				t.Fatalf("Parse accepted %q", tt.body)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to start with %q", err, tt.want)
			}
		})
	}
}

func TestParseBodyLimit(t *testing.T) {
	r := request(t, "", "nodes="+strings.Repeat("a,", MaxBody))
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, MaxBody)
	if _, err := Parse(r, "nodes", ""); err == nil || !strings.HasPrefix(err.Error(), "body: larger than") {
		t.Errorf("oversize body: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "keep_output=true&asynchronous=false&classes=a,b", "nodes=a,b,c", "conditions=x&classes=y",
		"keep_output=maybe", "nodes=..", "classes=" + strings.Repeat("z", 1100), "a=%zz"} {
		f.Add(s, "nodes")
		f.Add(s, "all")
	}
	f.Fuzz(func(t *testing.T, body, kind string) {
		if kind != "all" && kind != "nodes" {
			kind = "node"
		}
		p, err := Parse(request(t, "", body), kind, "n1")
		if err != nil {
			return
		}
		for _, c := range p.Classes {
			if classlist.Valid(c) != nil {
				t.Fatalf("accepted bad class %q", c)
			}
		}
		if !p.All && len(p.Nodes) == 0 {
			t.Fatal("no nodes and not all")
		}
	})
}
