package config

import "testing"

func TestParseAutoBool(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want AutoBool
	}{
		{"auto", SwitchAuto}, {" AUTO ", SwitchAuto},
		{"true", SwitchOn}, {"True", SwitchOn}, {"1", SwitchOn}, {"yes", SwitchOn}, {"on", SwitchOn},
		{"false", SwitchOff}, {"FALSE", SwitchOff}, {"0", SwitchOff}, {"no", SwitchOff}, {"off", SwitchOff},
	} {
		got, err := ParseAutoBool(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseAutoBool(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, err := ParseAutoBool(got.String()); err != nil || back != got {
			t.Errorf("ParseAutoBool(%q).String() = %q reads back %v, %v", tc.in, got, back, err)
		}
	}
	for _, in := range []string{"", "automatic", "2", "-1", "t", "enabled", "tru e", "\x00"} {
		if got, err := ParseAutoBool(in); err == nil {
			t.Errorf("ParseAutoBool(%q) = %v, want error", in, got)
		}
	}
}

func TestAutoBoolResolve(t *testing.T) {
	for _, tc := range []struct {
		a         AutoBool
		def, want bool
	}{
		{SwitchAuto, true, true}, {SwitchAuto, false, false},
		{SwitchOn, false, true}, {SwitchOn, true, true},
		{SwitchOff, true, false}, {SwitchOff, false, false},
	} {
		if got := tc.a.Resolve(tc.def); got != tc.want {
			t.Errorf("%v.Resolve(%v) = %v, want %v", tc.a, tc.def, got, tc.want)
		}
	}
}

// TestReflectionOn: edge.reflection auto follows edge.listen (on for loopback only).
func TestReflectionOn(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want bool
	}{
		{"", true},
		{"edge: {listen: '[::1]:50056'}", true},
		{"edge: {listen: 'localhost:1'}", true},
		{"edge: {listen: '0.0.0.0:443', allow_plaintext: true}", false},
		{"edge: {listen: '0.0.0.0:443', allow_plaintext: true, reflection: true}", true},
		{"edge: {reflection: false}", false},
	} {
		c, err := LoadBytes([]byte(tc.yaml), nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if got := c.Edge.ReflectionOn(); got != tc.want {
			t.Errorf("%q: ReflectionOn = %v, want %v", tc.yaml, got, tc.want)
		}
	}
}

// FuzzParseAutoBool: never panics; what it accepts reads back the same from String().
func FuzzParseAutoBool(f *testing.F) {
	for _, s := range []string{"auto", "true", "false", " On ", "", "2", "autoo"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAutoBool(s)
		if err != nil {
			return
		}
		if back, err := ParseAutoBool(a.String()); err != nil || back != a {
			t.Fatalf("%q -> %v reads back %v, %v", s, a, back, err)
		}
	})
}
