package confload

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func testFiles() Files[testConfig, *testConfig] {
	return Files[testConfig, *testConfig]{Schema: testSchema(), Name: "x.yaml"}
}

func TestFiles(t *testing.T) {
	f := testFiles()
	if got := f.Default(); !reflect.DeepEqual(got, defaults()) {
		t.Errorf("Default() = %+v, want %+v", got, defaults())
	}
	if got := f.EnvName("sub.addr"); got != "T_SUB_ADDR" {
		t.Errorf("EnvName = %q", got)
	}
	if !strings.HasSuffix(f.DefaultPath(), "x.yaml") {
		t.Errorf("DefaultPath() = %q", f.DefaultPath())
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "x.yaml")
	if err := os.WriteFile(file, []byte("name: file\ncount: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("T_COUNT", "9")
	for _, tc := range []struct {
		name     string
		path     string
		explicit bool
		want     string // the name and count loaded, or the error
	}{
		{"file and environment", file, true, "file 9"},
		{"missing, implicit", filepath.Join(dir, "none.yaml"), false, "default 9"},
		{"empty path, implicit", "", false, "default 9"},
		{"empty path, explicit", "", true, "config: open : no such file or directory"},
		{"missing, explicit", filepath.Join(dir, "none.yaml"), true, "config: open " + filepath.Join(dir, "none.yaml") + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			c, err := f.Load(tc.path, tc.explicit)
			if err != nil {
				got = err.Error()
			} else {
				got = c.Name + " " + strconv.Itoa(c.Count)
			}
			if got != tc.want {
				t.Errorf("Load(%q, %v) = %q, want %q", tc.path, tc.explicit, got, tc.want)
			}
		})
	}

	c, err := f.LoadBytes([]byte("name: round\nlevel: high\nsub: {items: [a, b]}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	y, err := f.YAML(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := f.LoadBytes(y, nil)
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Errorf("YAML round trip: %+v, %v; want %+v\n%s", back, err, c, y)
	}
}

func TestFilesDefaultPanics(t *testing.T) {
	f := testFiles()
	f.Schema.Default = "name: bad\n" + testDefault[len("\nname: default\n"):]
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "embedded default is invalid") {
			t.Errorf("Default() with a bad default: recover() = %v", r)
		}
	}()
	f.Default()
}

func TestProblems(t *testing.T) {
	var p Problems
	if p.Err() != nil {
		t.Fatalf("no problems: Err() = %v", p.Err())
	}
	p.Add("a.b", "must be %d", 1)
	p.Add("c[2]", "%q is bad", "x")
	err := p.Err()
	if err == nil || err.Error() != "a.b: must be 1\nc[2]: \"x\" is bad" {
		t.Fatalf("Err() = %v", err)
	}
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Key != "a.b" {
		t.Errorf("Err() does not hold the *KeyError of a.b: %v", err)
	}
}

func TestLogConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		level, format, want string
	}{
		{"debug", "text", ""},
		{"info", "json", ""},
		{"warn", "text", ""},
		{"error", "json", ""},
		{"trace", "text", `log.level: "trace" is not debug, info, warn or error`},
		{"INFO", "text", `log.level: "INFO" is not debug, info, warn or error`},
		{"info", "xml", `log.format: "xml" is not text or json`},
		{"", "", "log.level: \"\" is not debug, info, warn or error\nlog.format: \"\" is not text or json"},
	} {
		var p Problems
		LogConfig{Level: tc.level, Format: tc.format}.Check(&p)
		got := ""
		if err := p.Err(); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("Check(%q, %q) = %q, want %q", tc.level, tc.format, got, tc.want)
		}
	}
}

func TestCheckRoundTrip(t *testing.T) {
	f := testFiles()
	broken := testFiles()
	broken.Schema.Types[0].Encode = func(reflect.Value) any { return "medium" } // does not read back
	for _, tc := range []struct {
		name  string
		f     Files[testConfig, *testConfig]
		file  string
		env   string
		wants string // the start of the error, "" for none
	}{
		{"loads and round-trips", f, "name: x\nlevel: high", "T_COUNT=4\nT_SUB_ITEMS=a,b", ""},
		{"does not load", f, "count: many", "", ""},
		{"invalid", f, "name: bad", "", ""},
		{"env line without =", f, "", "T_COUNT", ""},
		{"written form does not load", broken, "", "", "YAML() output does not load: level: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.CheckRoundTrip([]byte(tc.file), tc.env)
			switch {
			case tc.wants == "" && err != nil:
				t.Errorf("CheckRoundTrip: %v", err)
			case tc.wants != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wants)):
				t.Errorf("CheckRoundTrip = %v, want an error starting %q", err, tc.wants)
			}
		})
	}
}

func FuzzCheckRoundTrip(f *testing.F) {
	f.Add([]byte(testDefault), "")
	f.Add([]byte("name: x\nlevel: high\npairs: [{a: 1, b: 2}]"), "T_PAIRS=a=b,c=d\nT_WAIT=1m")
	f.Add([]byte("sub: {items: [a, '', '{x}']}"), "T_COMMAND=/bin/x,{x}")
	f.Add([]byte("a: &a [*a, *a]\nb: *a"), "T_SMALL=300")
	files := testFiles()
	f.Fuzz(func(t *testing.T, file []byte, envText string) {
		if err := files.CheckRoundTrip(file, envText); err != nil {
			t.Fatal(err)
		}
	})
}
