package confload

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testConfig has a field of every kind the loader handles, a custom leaf type (level)
// and a struct in a list read from the environment by a hook (pair).
type testConfig struct {
	Name    string        `mapstructure:"name"`
	Wait    time.Duration `mapstructure:"wait"`
	Count   int           `mapstructure:"count"`
	Small   int8          `mapstructure:"small"`
	On      bool          `mapstructure:"on"`
	Level   level         `mapstructure:"level"`
	Command []string      `mapstructure:"command"`
	Pairs   []pair        `mapstructure:"pairs"`
	Sub     testSub       `mapstructure:"sub"`
}

type testSub struct {
	Addr  string   `mapstructure:"addr"`
	Items []string `mapstructure:"items"`
	Deep  testDeep `mapstructure:"deep"`
}

type testDeep struct {
	Flag bool `mapstructure:"flag"`
}

// level is a custom leaf type: "low" or "high" in the config, 1 or 2 in Go.
type level int

type pair struct {
	A string `mapstructure:"a" yaml:"a"`
	B string `mapstructure:"b" yaml:"b"`
}

const testDefault = `
name: default
wait: 30s
count: 3
small: 1
on: true
level: low
command: [/bin/run, "{x}"]
pairs: []
sub:
  addr: "127.0.0.1:1"
  items: []
  deep:
    flag: false
`

// Validate refuses names that say "bad", so the tests see validation errors too.
func (c *testConfig) Validate() error {
	var p Problems
	if strings.Contains(c.Name, "bad") {
		p.Add("name", "%q is bad", c.Name)
	}
	for i, arg := range c.Command {
		if err := CheckCommandArg(i, arg, "{x}"); err != nil {
			p.Add(fmt.Sprintf("command[%d]", i), "%v", err)
		}
	}
	return p.Err()
}

func testSchema() *Schema {
	return &Schema{
		Default:   testDefault,
		EnvPrefix: "T_",
		Types: []Type{{
			Type:   reflect.TypeFor[level](),
			Expect: `a level such as "low"`,
			Decode: func(data any) (any, error) {
				switch data {
				case "low":
					return level(1), nil
				case "high":
					return level(2), nil
				}
				return nil, fmt.Errorf("expected %s, got %s", `a level such as "low"`, Describe(data))
			},
			Encode: func(v reflect.Value) any { return map[level]string{1: "low", 2: "high"}[level(v.Int())] },
		}},
		Hooks: []Hook{func(to reflect.Type, data any) (any, bool, error) {
			s, ok := data.(string)
			if !ok || to != reflect.TypeFor[pair]() {
				return nil, false, nil
			}
			a, b, ok := strings.Cut(s, "=")
			if !ok {
				return nil, true, fmt.Errorf("invalid pair %q (want a=b)", s)
			}
			return map[string]any{"a": a, "b": b}, true, nil
		}},
	}
}

func envFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func load(t *testing.T, yamlText string, env map[string]string) (*testConfig, error) {
	t.Helper()
	return Load[testConfig](testSchema(), []byte(yamlText), envFrom(env))
}

func defaults() *testConfig {
	return &testConfig{
		Name: "default", Wait: 30 * time.Second, Count: 3, Small: 1, On: true, Level: 1,
		Command: []string{"/bin/run", "{x}"}, Pairs: []pair{},
		Sub: testSub{Addr: "127.0.0.1:1", Items: []string{}},
	}
}

func TestLoadLayers(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        map[string]string
		edit       func(c *testConfig)
	}{
		{"nothing", "", nil, func(*testConfig) {}},
		{"comment only", "# x\n", nil, func(*testConfig) {}},
		{"nil env", "", nil, func(*testConfig) {}},
		{"file", "Name: n\nwait: 2m\nsub: {ADDR: 'h:2', deep: {flag: true}}\nlevel: high\npairs: [{a: x, b: y}]",
			nil, func(c *testConfig) {
				c.Name, c.Wait, c.Sub.Addr, c.Sub.Deep.Flag, c.Level, c.Pairs = "n", 2*time.Minute, "h:2", true, 2, []pair{{"x", "y"}}
			}},
		{"null section keeps defaults", "sub:\n", nil, func(*testConfig) {}},
		{"null value is zero", "name:\n", nil, func(c *testConfig) { c.Name = "" }},
		{"env beats file", "name: file\ncount: 5", map[string]string{"T_NAME": "env", "T_SUB_DEEP_FLAG": "true"},
			func(c *testConfig) { c.Name, c.Count, c.Sub.Deep.Flag = "env", 5, true }},
		{"env list", "", map[string]string{"T_SUB_ITEMS": " a, ,b ", "T_PAIRS": "p=q, r=s"},
			func(c *testConfig) { c.Sub.Items, c.Pairs = []string{"a", "b"}, []pair{{"p", "q"}, {"r", "s"}} }},
		{"empty env list clears", "sub: {items: [a]}", map[string]string{"T_SUB_ITEMS": ""}, func(*testConfig) {}},
		{"env numbers", "", map[string]string{"T_COUNT": " 7", "T_SMALL": "-128", "T_WAIT": "0s", "T_ON": "false"},
			func(c *testConfig) { c.Count, c.Small, c.Wait, c.On = 7, -128, 0, false }},
		{"zero duration without unit", "wait: 0", nil, func(c *testConfig) { c.Wait = 0 }},
		{"unknown env ignored", "", map[string]string{"T_NOPE": "x", "T_SUB": "x", "t_name": "x", "T_SUB_DEEP": "x"}, func(*testConfig) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := load(t, tc.yaml, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			tc.edit(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// TestLoadRefuses pins the message of every kind of bad input.
func TestLoadRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        map[string]string
		want       string
	}{
		{"unknown key", "nme: x", nil, `unknown key "nme"`},
		{"unknown nested key keeps case", "SUB: {Adr: x}", nil, `unknown key "sub.Adr"`},
		{"unknown keys all named", "a: 1\nsub: {deep: {b: 2}}", nil, "unknown key \"a\"\nunknown key \"sub.deep.b\""},
		{"dotted key", "sub.addr: x", nil, `unknown key "sub.addr"`},
		{"case duplicate", "name: a\nNAME: b", nil, `duplicate key "name" (keys are case-insensitive)`},
		{"scalar for section", "sub: 5", nil, `sub: expected a mapping, got integer 5`},
		{"list for section", "sub: {deep: [a]}", nil, `sub.deep: expected a mapping, got a list`},
		{"mapping for string", "name: {a: 1}", nil, `name: expected a string, got a mapping`},
		{"mapping for duration", "wait: {}", nil, `wait: expected a duration such as "30s", got a mapping`},
		{"mapping for custom", "level: {a: 1}", nil, `level: expected a level such as "low", got a mapping`},
		{"mapping for list", "command: {a: b}", nil, `command: expected a list, got a mapping`},
		{"string for list", "command: /bin/run x", nil, `command: expected a list such as [a, b], got string "/bin/run x"`},
		{"int for string", "name: 0123", nil, `name: expected a string, got integer 83`},
		{"bool for string", "name: true", nil, `name: expected a string, got boolean true`},
		{"null in list is empty", "command: [a, ~]", nil, `command[1]: must not be empty`},
		{"list for string", "sub: {addr: [1]}", nil, `sub.addr: expected a string, got a list`},
		{"bad duration", "wait: soon", nil, `wait: invalid duration "soon" (want e.g. 30s, 5m, 1h)`},
		{"duration without unit", "wait: 25", nil, `wait: duration 25 has no unit (write e.g. "25s")`},
		{"float duration", "wait: 1.5", nil, `wait: expected a duration such as "30s", got number 1.5`},
		{"string for int", "count: many", nil, `count: invalid integer "many"`},
		{"float for int", "count: 1.5", nil, `count: expected an integer, got number 1.5`},
		{"huge int", "count: 9223372036854775808", nil, `count: integer 9223372036854775808 is out of range`},
		{"int8 overflow", "small: 128", nil, `small: integer 128 is out of range`},
		{"bad bool", "on: maybe", nil, `on: invalid boolean "maybe" (want true or false)`},
		{"int for bool", "on: 1", nil, `on: expected true or false, got integer 1`},
		{"bad custom", "level: mid", nil, `level: expected a level such as "low", got string "mid"`},
		{"scalar in struct list", "pairs: [5]", nil, `pairs[0]: expected a mapping, got integer 5`},
		{"not a mapping", "- a", nil, "parsing YAML: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into map[string]interface {}"},
		{"two documents", "name: a\n---\nname: b\n", nil, `parsing YAML: more than one document (a second "---")`},
		{"broken YAML", "sub: [", nil, "parsing YAML: yaml: line 1: did not find expected node content"},
		{"validation", "name: bad", nil, `name: "bad" is bad`},
		{"validation of a list item", "command: [/bin/run, '{y}']", nil, `command[1]: unknown placeholder "{y}" (use {x})`},
		{"env bad int", "", map[string]string{"T_COUNT": "abc"}, `count: invalid integer "abc" (from T_COUNT)`},
		{"env bad bool", "", map[string]string{"T_SUB_DEEP_FLAG": "yes"}, `sub.deep.flag: invalid boolean "yes" (want true or false) (from T_SUB_DEEP_FLAG)`},
		{"env bad duration", "", map[string]string{"T_WAIT": "25"}, `wait: invalid duration "25" (want e.g. 30s, 5m, 1h) (from T_WAIT)`},
		{"env bad hook", "", map[string]string{"T_PAIRS": "a=b,c"}, `pairs[1]: invalid pair "c" (want a=b) (from T_PAIRS)`},
		{"env bad custom", "", map[string]string{"T_LEVEL": "mid"}, `level: expected a level such as "low", got string "mid" (from T_LEVEL)`},
		{"env validation", "", map[string]string{"T_NAME": "bad"}, `name: "bad" is bad (from T_NAME)`},
		{"env list item validation", "", map[string]string{"T_COMMAND": "/bin/x,{y}"}, `command[1]: unknown placeholder "{y}" (use {x}) (from T_COMMAND)`},
		{"env and file errors", "count: x", map[string]string{"T_WAIT": "x"}, "wait: invalid duration \"x\" (want e.g. 30s, 5m, 1h) (from T_WAIT)\ncount: invalid integer \"x\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.yaml, tc.env)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tc.want)
			}
		})
	}
}

func TestBadDefault(t *testing.T) {
	s := testSchema()
	s.Default = "name: ["
	if _, err := Load[testConfig](s, nil, nil); err == nil || !strings.HasPrefix(err.Error(), "embedded default: ") {
		t.Errorf("got %v, want an embedded default error", err)
	}
}

func TestKeysAndEnvName(t *testing.T) {
	got := testSchema().Keys(reflect.TypeFor[testConfig]())
	want := []string{"name", "wait", "count", "small", "on", "level", "command", "pairs", "sub.addr", "sub.items", "sub.deep.flag"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Keys = %q, want %q", got, want)
	}
	if got := EnvName("KEEL_", "forward.tls.ca_file"); got != "KEEL_FORWARD_TLS_CA_FILE" {
		t.Errorf("EnvName = %q", got)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	c, err := load(t, "level: high\nwait: 90m\ncommand: ['/opt/my tools/run', 'a, b', '{x}']\npairs: [{a: 'x: y', b: '#'}]", nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := testSchema().Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"level: high\n", "wait: 1h30m\n", "sub:\n  addr: 127.0.0.1:1\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Marshal output lacks %q:\n%s", want, out)
		}
	}
	back, err := load(t, string(out), nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip changed the config:\n%s", out)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 90 * time.Second: "1m30s", 2 * time.Minute: "2m", time.Hour: "1h", 25 * time.Hour: "25h",
		time.Hour + time.Second: "1h0m1s", 100 * time.Millisecond: "100ms",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	missing := filepath.Join(dir, "missing.yaml")
	if err := os.WriteFile(good, []byte("name: file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("count: x"), 0o600); err != nil {
		t.Fatal(err)
	}
	loadName := func(path string, explicit bool) (string, error) {
		return LoadFile(path, explicit, func(file []byte) (string, error) {
			c, err := Load[testConfig](testSchema(), file, nil)
			if err != nil {
				return "", err
			}
			return c.Name, nil
		})
	}
	for _, tc := range []struct {
		path     string
		explicit bool
		want     string // the name loaded, or the error
	}{
		{good, true, "file"},
		{good, false, "file"},
		{missing, false, "default"},
		{"", false, "default"},
		{missing, true, "config: open " + missing + ": no such file or directory"},
		{bad, true, "config " + bad + `: count: invalid integer "x"`},
		{bad, false, "config " + bad + `: count: invalid integer "x"`},
	} {
		got, err := loadName(tc.path, tc.explicit)
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("LoadFile(%q, %v) = %q, want %q", tc.path, tc.explicit, got, tc.want)
		}
	}
}

func TestDefaultPath(t *testing.T) {
	for _, tc := range []struct{ goos, programData, want string }{
		{"linux", "", "/etc/keel/x.yaml"},
		{"freebsd", `D:\Data`, "/etc/keel/x.yaml"},
		{"windows", `D:\Data`, `D:\Data\Keel\x.yaml`},
		{"windows", `D:\Data\`, `D:\Data\Keel\x.yaml`},
		{"windows", "", `C:\ProgramData\Keel\x.yaml`},
	} {
		got := DefaultPath(tc.goos, func(string) string { return tc.programData }, "x.yaml")
		if got != tc.want {
			t.Errorf("%s, ProgramData=%q: %q, want %q", tc.goos, tc.programData, got, tc.want)
		}
	}
}

func TestIsHostName(t *testing.T) {
	for s, want := range map[string]bool{
		"relay.example": true, "a": true, "x_y.example": true, "1.2.3.4": true, "a-b": true,
		"": false, "a..b": false, "-a": false, "a-": false, "a b": false, "bad!": false, "[::1]": false,
		strings.Repeat("a", 64): false, strings.Repeat("a.", 127) + "a": false,
	} {
		if got := IsHostName(s); got != want {
			t.Errorf("IsHostName(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCheckCommandArg(t *testing.T) {
	three := []string{"{hostname}", "{node_id}", "{classes}"}
	for _, tc := range []struct {
		i            int
		arg          string
		placeholders []string
		want         string // "" = accepted
	}{
		{0, "/opt/rudder/bin/rudder", three, ""},
		{1, "--host={hostname}:{node_id}", three, ""},
		{1, "a}b{c", three, ""},
		{1, "{", three, ""},
		{1, "{hostname", three, ""},
		{0, "", three, "must not be empty"},
		{1, "a\x00b", three, `"a\x00b" contains a NUL byte`},
		{0, "{classes}", three, `the program must not contain a placeholder, got "{classes}"`},
		{1, "{host}", three, `unknown placeholder "{host}" (use {hostname}, {node_id} or {classes})`},
		{1, "{}", three, `unknown placeholder "{}" (use {hostname}, {node_id} or {classes})`},
		{1, "{{hostname}}", three, `unknown placeholder "{{hostname}" (use {hostname}, {node_id} or {classes})`},
		{1, "{hostname}", []string{"{classes}"}, `unknown placeholder "{hostname}" (use {classes})`},
		{1, "{a}", []string{"{b}", "{c}"}, `unknown placeholder "{a}" (use {b} or {c})`},
		{1, "{a}", nil, `unknown placeholder "{a}" (use none)`},
	} {
		err := CheckCommandArg(tc.i, tc.arg, tc.placeholders...)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("CheckCommandArg(%d, %q, %q) = %q, want %q", tc.i, tc.arg, tc.placeholders, got, tc.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{nil, "null"}, {true, "boolean true"}, {"x", `string "x"`}, {5, "integer 5"}, {int64(-5), "integer -5"},
		{uint64(1 << 63), "integer 9223372036854775808"}, {1.5, "number 1.5"}, {[]any{1}, "a list"},
		{map[string]any{}, "a mapping"}, {map[any]any{}, "a mapping"}, {struct{}{}, "a value of type struct {}"},
	} {
		if got := Describe(tc.v); got != tc.want {
			t.Errorf("Describe(%#v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// FuzzDecode feeds arbitrary YAML and environment to Load: it must never panic, every
// error must say something, and whatever it accepts
// must validate and survive a Marshal round trip.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(testDefault), "")
	f.Add([]byte(""), "T_SUB_ITEMS=a,b\nT_PAIRS=a=b, c=d\nT_LEVEL=high")
	f.Add([]byte("name: 0123\nwait: 25\nsub: 5"), "T_COUNT=abc")
	f.Add([]byte("a: &a [*a, *a]\nb: *a"), "")
	f.Add([]byte("{? [a] : b}"), "")
	f.Add([]byte("---\n---\n"), "")
	f.Add([]byte("name: \"\\x00\\u00e9\"\ncommand: ['{x}', '{', ~, 5]"), "T_NAME=\t")
	f.Add([]byte("pairs: [{a: 1}, x]\nlevel: [low]\nsmall: -129"), "T_PAIRS=,=,x")
	f.Add([]byte("Sub: {Deep: {FLAG: yes}}\nsub: {}"), "")
	f.Fuzz(func(t *testing.T, yamlText []byte, envText string) {
		env := map[string]string{}
		for line := range strings.SplitSeq(envText, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				env[k] = v
			}
		}
		s := testSchema()
		c, err := Load[testConfig](s, yamlText, envFrom(env))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load accepted an invalid config: %v", err)
		}
		out, err := s.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Load[testConfig](s, out, nil)
		if err != nil {
			t.Fatalf("Marshal output does not load: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the config:\n%s", out)
		}
	})
}

// FuzzCheckCommandArg checks an argument CheckCommandArg accepts is not empty, has no
// NUL byte, and has no "{...}" left once the known placeholders are removed (none at
// all in the program).
func FuzzCheckCommandArg(f *testing.F) {
	for _, s := range []string{"/opt/rudder/bin/rudder", "{hostname}", "--host={hostname}:{node_id}", "{classes}",
		"{host}", "{}", "{{hostname}}", "a}b{c", "{", "}{", "", "a\x00b", "{hostname", "{node_id}{"} {
		f.Add(0, s, true)
		f.Add(3, s, false)
	}
	f.Fuzz(func(t *testing.T, i int, arg string, three bool) {
		if i < 0 {
			i = -(i + 1)
		}
		placeholders := []string{"{classes}"}
		if three {
			placeholders = []string{"{hostname}", "{node_id}", "{classes}"}
		}
		if CheckCommandArg(i, arg, placeholders...) != nil {
			return
		}
		if arg == "" || strings.ContainsRune(arg, 0) {
			t.Fatalf("CheckCommandArg(%d, %q) accepted an empty or NUL argument", i, arg)
		}
		var pairs []string
		for _, p := range placeholders {
			pairs = append(pairs, p, "\x00")
		}
		rest := strings.NewReplacer(pairs...).Replace(arg)
		if i == 0 && rest != arg {
			t.Fatalf("CheckCommandArg(0, %q) accepted a placeholder in the program", arg)
		}
		if o := strings.IndexByte(rest, '{'); o >= 0 && strings.Contains(rest[o:], "}") {
			t.Fatalf("CheckCommandArg(%d, %q, %s) accepted an unknown placeholder", i, arg, strconv.Quote(strings.Join(placeholders, " ")))
		}
	})
}
