package nodemap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

const (
	idA = "1b2c3d4e-0000-4000-8000-00000000000a"
	idB = "1b2c3d4e-0000-4000-8000-00000000000b"
	idC = "1b2c3d4e-0000-4000-8000-00000000000c"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseGood(t *testing.T) {
	mine := Route{Kind: Mine}
	unknown := Route{Kind: Unknown}
	via := func(id string) Route { return Route{Kind: BelowSubRelay, Via: id} }
	treeRoutes := map[string]Route{
		"root":   mine,
		"relay1": mine,
		"relay3": mine,
		idA:      mine,
		"relay2": via("relay1"),
		idB:      via("relay1"),
		idC:      via("relay1"),
		"nope":   unknown,
		"":       unknown,
	}
	treeBelow := []string{idA, idB, idC, "relay1", "relay2", "relay3", "root"}
	treeKeys := map[string]string{
		"root":   "sha256:e3f700611ffcb0ffc71bf71e66002f2b7245e50a4b686209915a381e38595c05",
		"relay1": "sha256//JHtaOHSBl/0IYhhhJOW08PUr6PLMYENPSHifVf+hxNY=",
		idA:      "sha256:",
		idB:      "",
	}

	tests := []struct {
		name      string
		file      string // under testdata/, or
		data      string // inline
		self      string
		len       int
		routes    map[string]Route
		below     []string
		subRelays []string
		keys      map[string]string // id -> KeyHash
	}{
		{name: "tree at root", file: "tree.json", self: "root", len: 7,
			routes: treeRoutes, below: treeBelow, subRelays: []string{"relay1"}, keys: treeKeys},
		{name: "tree wrapped in data", file: "tree-data.json", self: "root", len: 7,
			routes: treeRoutes, below: treeBelow, subRelays: []string{"relay1"}, keys: treeKeys},
		{name: "sub-relay map", file: "relay1.json", self: "relay1", len: 5,
			routes: map[string]Route{
				"relay1": unknown, // its parent is outside the map
				"relay2": mine,
				"node-b": mine,
				"node-c": via("relay2"),
				"node-e": via("relay2"),
				"root":   unknown,
			},
			below:     []string{"node-b", "node-c", "node-e", "relay2"},
			subRelays: []string{"relay2"},
			keys:      map[string]string{"node-b": "", "node-c": "", "node-e": "sha256:"}},
		{name: "empty object", file: "empty.json", self: "root", len: 0,
			routes: map[string]Route{"root": unknown}},
		{name: "empty data wrapper", data: `{"data": {}}`, self: "root", len: 0},
		{name: "root alone", data: `{"root": {"hostname": "r", "policy-server": "root"}}`, self: "root", len: 1,
			routes: map[string]Route{"root": mine}, below: []string{"root"}},
		{name: "relay without its own entry", self: "r1",
			data: `{"n1": {"hostname": "n1", "policy-server": "r1"}, "n2": {"hostname": "n2", "policy-server": "n1"}}`,
			len:  2, routes: map[string]Route{"n1": mine, "n2": via("n1"), "r1": unknown},
			below: []string{"n1", "n2"}, subRelays: []string{"n1"}},
		{name: "node called data", self: "root",
			data: `{"data": {"hostname": "d", "policy-server": "root", "key-hash": "sha256:00"}}`, len: 1,
			routes: map[string]Route{"data": mine}, below: []string{"data"},
			keys: map[string]string{"data": "sha256:00"}},
		{name: "node called data, listed first", self: "root",
			data: `{"data": {"hostname": "d", "policy-server": "root"}, "x": {"hostname": "x", "policy-server": "data"}}`, len: 2,
			routes: map[string]Route{"data": mine, "x": via("data")}, below: []string{"data", "x"}, subRelays: []string{"data"}},
		{name: "node called data, fields named in other cases", self: "root",
			data: `{"data": {"HostName": "d", "Policy-Server": "root", "KEY-HASH": "sha256:01", "os": {"a": 1}, "hostname": "d2"},` +
				`"x": {"hostname": "x", "policy-server": "root"}}`, len: 2,
			routes: map[string]Route{"data": mine, "x": mine}, below: []string{"data", "x"},
			keys: map[string]string{"data": "sha256:01"}},
		{name: "wrapped node called policy-server", self: "root",
			data: `{"data": {"policy-server": {"hostname": "p", "policy-server": "root"}}}`, len: 1,
			routes: map[string]Route{"policy-server": mine}, below: []string{"policy-server"}},
		{name: "wrapped node called data", self: "root",
			data: `{"data": {"data": {"hostname": "d", "policy-server": "root"}}}`, len: 1,
			routes: map[string]Route{"data": mine}, below: []string{"data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.data)
			if tt.file != "" {
				data = readTestdata(t, tt.file)
			}
			m, err := Parse(data, tt.self)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if m.Self() != tt.self {
				t.Errorf("Self() = %q, want %q", m.Self(), tt.self)
			}
			if m.Len() != tt.len {
				t.Errorf("Len() = %d, want %d", m.Len(), tt.len)
			}
			sum := sha256.Sum256(data)
			if want := hex.EncodeToString(sum[:]); m.Digest() != want {
				t.Errorf("Digest() = %s, want %s", m.Digest(), want)
			}
			for id, want := range tt.routes {
				if got := m.Route(id); got != want {
					t.Errorf("Route(%q) = %+v, want %+v", id, got, want)
				}
			}
			if got := m.Below(); !slices.Equal(got, tt.below) {
				t.Errorf("Below() = %q, want %q", got, tt.below)
			}
			if got := m.SubRelays(); !slices.Equal(got, tt.subRelays) {
				t.Errorf("SubRelays() = %q, want %q", got, tt.subRelays)
			}
			wantMine := 0
			for _, id := range tt.below {
				if m.Route(id).Kind == Mine {
					wantMine++
				}
			}
			if mine, below := m.Counts(); mine != wantMine || below != len(tt.below) {
				t.Errorf("Counts() = %d, %d, want %d, %d", mine, below, wantMine, len(tt.below))
			}
			for id, want := range tt.keys {
				n, ok := m.Node(id)
				if !ok {
					t.Errorf("Node(%q) missing", id)
					continue
				}
				if n.ID != id || n.KeyHash != want {
					t.Errorf("Node(%q) = %+v, want ID %q and KeyHash %q", id, n, id, want)
				}
			}
			checkConsistent(t, m)
		})
	}
}

func TestNodeFields(t *testing.T) {
	m, err := Parse(readTestdata(t, "tree.json"), "root")
	if err != nil {
		t.Fatal(err)
	}
	want := Node{ID: idC, Hostname: "node-c.example.org", PolicyServer: "relay2",
		KeyHash: "sha256//JHtaOHSBl/0IYhhhJOW08PUr6PLMYENPSHifVf+hxNY="}
	if got, ok := m.Node(idC); !ok || got != want {
		t.Errorf("Node(%q) = %+v, %v; want %+v", idC, got, ok, want)
	}
	if _, ok := m.Node("missing"); ok {
		t.Error("Node(missing) found")
	}
	// Below and SubRelays hand out copies.
	m.Below()[0] = "changed"
	m.SubRelays()[0] = "changed"
	if m.Below()[0] != idA || m.SubRelays()[0] != "relay1" {
		t.Error("Below/SubRelays share their backing array with the map")
	}
}

func TestParseBad(t *testing.T) {
	const okEntry = `{"hostname": "h", "policy-server": "root"}`
	tests := []struct {
		name string
		self string
		data string
		want string
	}{
		{"not JSON", "root", `{"a": `,
			"node map: invalid JSON: unexpected end of JSON input"},
		{"array", "root", `[]`,
			"node map: invalid JSON: json: cannot unmarshal array into Go value of type map[string]json.RawMessage"},
		{"string", "root", `"{}"`,
			"node map: invalid JSON: json: cannot unmarshal string into Go value of type map[string]json.RawMessage"},
		{"number", "root", `42`,
			"node map: invalid JSON: json: cannot unmarshal number into Go value of type map[string]json.RawMessage"},
		{"boolean", "root", `true`,
			"node map: invalid JSON: json: cannot unmarshal bool into Go value of type map[string]json.RawMessage"},
		{"truncated in an entry", "root", `{"a": {"hostname": "h", "pol`, "node map: invalid JSON: unexpected end of JSON input"},
		{"truncated after an entry", "root", `{"root": {"hostname": "h", "policy-server": "root"},`,
			"node map: invalid JSON: unexpected end of JSON input"},
		{"a second object after the map", "root", `{} {}`, "node map: invalid JSON: invalid character '{' after top-level value"},
		{"garbage after the map", "root", `{}x`, "node map: invalid JSON: invalid character 'x' after top-level value"},
		{"garbage for a value", "root", `{"a": x}`, "node map: invalid JSON: invalid character 'x' looking for beginning of value"},
		{"garbage after a value", "root", `{"a": 1x}`, "node map: invalid JSON: invalid character 'x' after object key:value pair"},
		{"garbage after a name", "root", `{"a" 1}`, "node map: invalid JSON: invalid character '1' after object key"},
		{"a trailing comma", "root", `{"a": {}, }`, "node map: invalid JSON: invalid character '}' looking for beginning of object key string"},
		{"a bad escape in a name", "root", `{"a\q": {}}`, "node map: invalid JSON: invalid character 'q' in string escape code"},
		{"a bad literal", "root", `{"a": nul}`, "node map: invalid JSON: invalid character ' ' in literal null (expecting 'l')"},
		{"garbage in an entry", "root", `{"a": {"hostname": "h", "policy-server": "root"}, "b": {"hostname": x}}`,
			"node map: invalid JSON: invalid character 'x' looking for beginning of value"},
		{"wrapped map truncated", "root", `{"data": {"a": {"hostname": "h", "policy-server": "root"}`,
			"node map: invalid JSON: unexpected end of JSON input"},
		{"null", "root", `null`, "node map: top level is null, want an object"},
		// A truncated file must not wipe the map in force; "no nodes" is written as {}.
		{"empty file", "root", ``, "node map: the file is empty (a map with no nodes is {})"},
		{"blank file", "root", " \n\t", "node map: the file is empty (a map with no nodes is {})"},
		{"bad self", "a/b", `{}`, `node map: invalid self node id "a/b"`},
		{"entries not objects", "root",
			`{"b": "x", "a": [1], "c": null, "d": {"hostname": 5, "policy-server": "root"}, "ok": {"hostname": "h", "policy-server": "root"}}`,
			"node map: entry is not a valid node object: a, b, c, d"},
		{"bad ids", "root",
			`{"a b": {"hostname": "h", "policy-server": "root"}, "..": {"hostname": "h", "policy-server": "root"}, "": {"hostname": "h", "policy-server": "root"}, "` +
				strings.Repeat("x", 256) + `": {"hostname": "h", "policy-server": "root"}}`,
			`node map: invalid node id: "", "..", "a b", "` + strings.Repeat("x", 256) + `"`},
		{"missing hostname", "root",
			`{"b": {"policy-server": "root"}, "a": {"hostname": "", "policy-server": "root"}, "c": {"hostname": null, "policy-server": "root"}}`,
			"node map: missing hostname: a, b, c"},
		{"missing policy-server", "root",
			`{"b": {"hostname": "h"}, "a": {"hostname": "h", "policy-server": ""}}`,
			"node map: missing policy-server: a, b"},
		{"invalid policy-server", "root",
			`{"b": {"hostname": "h", "policy-server": "../etc"}, "a": {"hostname": "h", "policy-server": "x y"}}`,
			`node map: invalid policy-server: a -> "x y", b -> "../etc"`},
		{"dangling", "root",
			`{"b": {"hostname": "h", "policy-server": "gone"}, "a": {"hostname": "h", "policy-server": "lost"}, "c": {"hostname": "h", "policy-server": "a"}}`,
			`node map: policy-server not in the map: a -> "lost", b -> "gone"`},
		{"a sub-relay's map seen from elsewhere", "elsewhere",
			`{"relay1": {"hostname": "h", "policy-server": "root"}, "n1": {"hostname": "h", "policy-server": "relay1"}}`,
			`node map: policy-server not in the map: relay1 -> "root"`},
		{"self-loop that is not self", "root",
			`{"x": {"hostname": "h", "policy-server": "x"}, "y": {"hostname": "h", "policy-server": "x"}}`,
			"node map: cycle in policy servers: x"},
		{"root's map seen from a relay", "relay1",
			`{"root": {"hostname": "h", "policy-server": "root"}, "relay1": {"hostname": "h", "policy-server": "root"}}`,
			"node map: cycle in policy servers: root"},
		{"two cycles", "root",
			`{"c": {"hostname": "h", "policy-server": "a"}, "a": {"hostname": "h", "policy-server": "b"}, "b": {"hostname": "h", "policy-server": "c"},` +
				`"e": {"hostname": "h", "policy-server": "d"}, "d": {"hostname": "h", "policy-server": "e"}, "f": {"hostname": "h", "policy-server": "d"}, "g": {"hostname": "h", "policy-server": "root"}}`,
			"node map: cycle in policy servers: a, b, c, d, e"},
		{"self below its own child", "r1",
			`{"r1": {"hostname": "h", "policy-server": "n2"}, "n1": {"hostname": "h", "policy-server": "r1"}, "n2": {"hostname": "h", "policy-server": "n1"}}`,
			"node map: cycle in policy servers: n1, n2, r1"},
		{"a first member data that is not an object", "root",
			`{"data": [1, {"a": [2]}], "b": {"hostname": "h", "policy-server": "data"}, "c": {"hostname": "h", "policy-server": "root"}}`,
			"node map: entry is not a valid node object: data"},
		{"a data wrapper holding an entry", "root", `{"data": {"hostname": "d", "policy-server": 5}}`,
			"node map: entry is not a valid node object: hostname, policy-server"},
		// An id listed more than once is refused (json.Unmarshal would keep the last entry):
		// which one the policy server meant cannot be known.
		{"id listed twice", "root", `{"a": ` + okEntry + `, "a": ` + okEntry + `}`, "node map: node id listed more than once: a"},
		{"id listed twice, once broken", "root", `{"a": ` + okEntry + `, "a": 1}`,
			"node map: entry is not a valid node object: a; node id listed more than once: a"},
		{"id listed twice, both broken", "root", `{"a": {"hostname": "h"}, "a": {"hostname": "h"}}`,
			"node map: node id listed more than once: a; missing policy-server: a"},
		{"id listed twice in the data wrapper", "root", `{"data": {"a": ` + okEntry + `, "a": ` + okEntry + `}}`,
			"node map: node id listed more than once: a"},
		{"data wrapper listed twice", "root", `{"data": {"b": ` + okEntry + `}, "data": {"b": ` + okEntry + `}}`,
			"node map: node id listed more than once: data; missing hostname: data; missing policy-server: data"},
		{"everything at once", "root",
			`{"a": 1, "b!": {}, "c": {"policy-server": "root"}, "d": {"hostname": "h"}, "e": {"hostname": "h", "policy-server": "%"},` +
				`"f": {"hostname": "h", "policy-server": "nowhere"}, "g": {"hostname": "h", "policy-server": "g"},` +
				`"h": {"hostname": "h", "policy-server": "a"}, "i": {"hostname": "h", "policy-server": "b!"}}`,
			`node map: entry is not a valid node object: a; invalid node id: "b!"; missing hostname: c; ` +
				`missing policy-server: d; invalid policy-server: e -> "%", i -> "b!"; policy-server not in the map: f -> "nowhere"; ` +
				`cycle in policy servers: g`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.data), tt.self)
			if err == nil {
				t.Fatalf("Parse succeeded (%d nodes), want error %s", m.Len(), tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Parse error:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	m := Empty("root")
	if m.Self() != "root" || m.Len() != 0 || m.Digest() != "" || len(m.Below()) != 0 || len(m.SubRelays()) != 0 {
		t.Errorf("Empty(root) = %+v", m)
	}
	if r := m.Route("root"); r.Kind != Unknown {
		t.Errorf("Empty map Route(root) = %+v", r)
	}
	if _, ok := m.Node("root"); ok {
		t.Error("Empty map has a node")
	}
}

func TestRouteKindString(t *testing.T) {
	for k, want := range map[RouteKind]string{Unknown: "unknown", Mine: "mine", BelowSubRelay: "below-sub-relay", 7: "RouteKind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(k), got, want)
		}
	}
}

func TestValidID(t *testing.T) {
	for s, want := range map[string]bool{
		"root": true, "a.b_c-D9": true, "...": true, strings.Repeat("a", 255): true,
		"": false, ".": false, "..": false, "a/b": false, "a b": false, "é": false,
		strings.Repeat("a", 256): false, "a\x00": false,
	} {
		if got := validID(s); got != want {
			t.Errorf("validID(%q) = %v, want %v", s, got, want)
		}
	}
}

// chainMap builds a map of n nodes hanging in one chain under self, listed so that the first id
// in sorted order is the deepest node.
func chainMap(n int, self string) []byte {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		parent := self
		if i < n-1 {
			parent = fmt.Sprintf("n%06d", i+1)
		}
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `"n%06d": {"hostname": "n%d.example.org", "policy-server": %q, "key-hash": "sha256:00"}`, i, i, parent)
	}
	b.WriteString("}")
	return []byte(b.String())
}

// flatMap builds a map of n nodes: 100 sub-relays under self, the others spread below them.
func flatMap(n int, self string) []byte {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		parent := self
		if i >= 100 {
			parent = fmt.Sprintf("n%06d", i%100)
		}
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `"n%06d": {"hostname": "n%d.example.org", "policy-server": %q, "key-hash": "sha256//AAAA"}`, i, i, parent)
	}
	b.WriteString("}")
	return []byte(b.String())
}

func TestParseLargeChain(t *testing.T) {
	const n = 100_000
	m, err := Parse(chainMap(n, "relay"), "relay")
	if err != nil {
		t.Fatal(err)
	}
	top := fmt.Sprintf("n%06d", n-1)
	if m.Len() != n || len(m.Below()) != n {
		t.Fatalf("Len %d, Below %d, want %d", m.Len(), len(m.Below()), n)
	}
	if r := m.Route(top); r.Kind != Mine {
		t.Errorf("Route(top) = %+v", r)
	}
	if r := m.Route("n000000"); r != (Route{Kind: BelowSubRelay, Via: top}) {
		t.Errorf("Route(deepest) = %+v", r)
	}
	if got := m.SubRelays(); !slices.Equal(got, []string{top}) {
		t.Errorf("SubRelays = %q", got)
	}

	// The same chain closed into a loop names every node.
	data := []byte(strings.Replace(string(chainMap(n, "relay")), `"policy-server": "relay"`, `"policy-server": "n000000"`, 1))
	_, err = Parse(data, "relay")
	if err == nil || !strings.HasPrefix(err.Error(), "node map: cycle in policy servers: n000000, n000001, ") ||
		strings.Count(err.Error(), ", ") != n-1 {
		t.Errorf("loop of %d nodes: error not naming them all: %.200v", n, err)
	}
}

func TestParseLargeFlat(t *testing.T) {
	const n = 100_000
	m, err := Parse(flatMap(n, "root"), "root")
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != n || len(m.Below()) != n || len(m.SubRelays()) != 100 {
		t.Fatalf("Len %d, Below %d, SubRelays %d", m.Len(), len(m.Below()), len(m.SubRelays()))
	}
	if r := m.Route("n099999"); r != (Route{Kind: BelowSubRelay, Via: "n000099"}) {
		t.Errorf("Route = %+v", r)
	}
	checkConsistent(t, m)
}

func BenchmarkParse100k(b *testing.B) {
	data := flatMap(100_000, "root")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data, "root"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRoute(b *testing.B) {
	m, err := Parse(flatMap(100_000, "root"), "root")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if m.Route("n054321").Kind != BelowSubRelay {
			b.Fatal("bad route")
		}
	}
}

// checkConsistent verifies the invariants of a successfully parsed map.
func checkConsistent(t testing.TB, m *Map) {
	t.Helper()
	self := m.Self()
	below := m.Below()
	if !slices.IsSorted(below) {
		t.Fatalf("Below not sorted: %q", below)
	}
	inBelow := map[string]bool{}
	for _, id := range below {
		inBelow[id] = true
	}
	for i := range m.nodes {
		n := m.nodeAt(int32(i))
		got, ok := m.Node(n.ID)
		if !ok || got != n {
			t.Fatalf("Node(%q) = %+v, %v; want %+v", n.ID, got, ok, n)
		}
		r := m.Route(n.ID)
		switch r.Kind {
		case Mine:
			if n.PolicyServer != self {
				t.Fatalf("%q is Mine but its policy server is %q", n.ID, n.PolicyServer)
			}
		case BelowSubRelay:
			if vr := m.Route(r.Via); vr.Kind != Mine || r.Via == self {
				t.Fatalf("%q is below %q, whose route is %+v", n.ID, r.Via, vr)
			}
			if pr := m.Route(n.PolicyServer); n.PolicyServer != r.Via && pr != r {
				t.Fatalf("%q routes via %q but its parent %q routes %+v", n.ID, r.Via, n.PolicyServer, pr)
			}
		case Unknown:
			if n.ID != self || n.PolicyServer == self {
				t.Fatalf("%q (policy server %q) is Unknown", n.ID, n.PolicyServer)
			}
		}
		if inBelow[n.ID] != (r.Kind != Unknown) {
			t.Fatalf("%q: route %+v but in Below = %v", n.ID, r, inBelow[n.ID])
		}
	}
	if len(below) > m.Len() || len(below) < m.Len()-1 {
		t.Fatalf("Below has %d nodes, map has %d", len(below), m.Len())
	}
	if slices.Contains(below, self) != (m.Route(self).Kind == Mine) {
		t.Fatalf("self in Below: %v, self route %+v", slices.Contains(below, self), m.Route(self))
	}
	subs := m.SubRelays()
	if !slices.IsSorted(subs) {
		t.Fatalf("SubRelays not sorted: %q", subs)
	}
	for _, s := range subs {
		if s == self || m.Route(s).Kind != Mine {
			t.Fatalf("sub-relay %q is self or not Mine", s)
		}
		hasChild := false
		for i := range m.nodes {
			if n := m.nodeAt(int32(i)); n.PolicyServer == s && n.ID != s {
				hasChild = true
				break
			}
		}
		if !hasChild {
			t.Fatalf("sub-relay %q has no child", s)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"tree.json", "tree-data.json", "relay1.json", "empty.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "root")
		f.Add(data, "relay1")
	}
	f.Add([]byte(``), "root")
	f.Add([]byte(`null`), "root")
	f.Add([]byte(`{"data": {"data": {"hostname": "d", "policy-server": "data"}}}`), "data")
	f.Add([]byte(`{"x": {"hostname": "h", "policy-server": "x"}}`), "root")
	f.Add([]byte(`{"r1": {"hostname": "h", "policy-server": "n1"}, "n1": {"hostname": "h", "policy-server": "r1"}}`), "r1")
	f.Add([]byte(`{"a": {"hostname": "h", "policy-server": "b"}, "b": {"hostname": "h", "policy-server": "a"}, "c": 1}`), "root")
	f.Add(chainMap(50, "root"), "root")
	f.Add([]byte(`{"data": {"policy-server": "x", "a": {"hostname": "h", "policy-server": "root"}}}`), "root")
	f.Add([]byte(`{"data": {"HostName": "d", "policy-server": {}}, "x": 1}`), "root")
	f.Add([]byte(`{"a": {"hostname": "h", "policy-server": "root"}, "a": {"hostname": "h", "policy-server": "root"}}`), "root")
	f.Add([]byte(`{"data": [1, {"a": [2]}], "b": {"hostname": "h", "policy-server": "data"}}`), "root")
	f.Fuzz(func(t *testing.T, data []byte, self string) {
		checkSameAsReference(t, data)
		m, err := Parse(data, self)
		if err != nil {
			if m != nil {
				t.Fatal("Parse returned a map and an error")
			}
			return
		}
		if m.Self() != self {
			t.Fatalf("Self() = %q, want %q", m.Self(), self)
		}
		checkConsistent(t, m)
	})
}

// TestParseReaderPieces reads maps one byte at a time, so that every value and name is cut
// across reads, and from a reader that fails.
func TestParseReaderPieces(t *testing.T) {
	for _, name := range []string{"tree.json", "tree-data.json", "relay1.json", "empty.json"} {
		data := readTestdata(t, name)
		self := "root"
		if name == "relay1.json" {
			self = "relay1"
		}
		whole, err := Parse(data, self)
		if err != nil {
			t.Fatal(err)
		}
		pieces, err := ParseReader(iotest.OneByteReader(bytes.NewReader(data)), self)
		if err != nil {
			t.Fatalf("%s one byte at a time: %v", name, err)
		}
		if pieces.Digest() != whole.Digest() || !slices.Equal(pieces.Below(), whole.Below()) {
			t.Errorf("%s one byte at a time: digest %s, below %q; want %s, %q", name, pieces.Digest(), pieces.Below(), whole.Digest(), whole.Below())
		}
		for i := range whole.nodes {
			n := whole.nodeAt(int32(i))
			if got, ok := pieces.Node(n.ID); !ok || got != n {
				t.Errorf("%s one byte at a time: Node(%s) = %+v, %v; want %+v", name, n.ID, got, ok, n)
			}
		}
	}
	half := io.MultiReader(bytes.NewReader(flatMap(1000, "root")[:5000]), iotest.ErrReader(errors.New("disk on fire")))
	if _, err := ParseReader(half, "root"); err == nil || err.Error() != "node map: read: disk on fire" {
		t.Errorf("a reader failing half way: %v", err)
	}
}
