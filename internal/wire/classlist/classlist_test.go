package classlist

import (
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want string // joined with "|", or the error's start after "error: "
	}{
		{"", ""},
		{" , ,", ""},
		{"a", "a"},
		{"a, b_1,,c ", "a|b_1|c"},
		{"A9,9a,x_", "A9|9a|x_"},
		{strings.Repeat("a", MaxLen), strings.Repeat("a", MaxLen)},
		{"ok,bad-class", `error: class "bad-class" does not match ^[A-Za-z0-9][A-Za-z0-9_]*$`},
		{"_x", `error: class "_x" does not match ^[A-Za-z0-9][A-Za-z0-9_]*$`},
		{"a b", `error: class "a b" does not match`},
		{"a;rm", `error: class "a;rm" does not match`},
		{"-D", `error: class "-D" does not match`},
		{"é", `error: class "é" does not match`},
		{"a\x00", `error: class "a\x00" does not match`},
		{strings.Repeat("a", MaxLen+1), `error: class "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"... is 1025 characters long, at most 1024`},
	}
	for _, tt := range tests {
		got, err := Split(tt.in)
		s := strings.Join(got, "|")
		if err != nil {
			s = "error: " + err.Error()
		}
		if !strings.HasPrefix(s, tt.want) || (!strings.HasPrefix(tt.want, "error: ") && s != tt.want) {
			t.Errorf("Split(%.40q) = %.80q, want %.80q", tt.in, s, tt.want)
		}
	}
}

func TestValidEmpty(t *testing.T) {
	if Valid("") == nil {
		t.Error("Valid accepted an empty class")
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{"a,b", " x , _y ,", "-D", "a;rm", strings.Repeat("z", 1100), "é,ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		classes, err := Split(s)
		if err != nil {
			return
		}
		for _, c := range classes {
			if Valid(c) != nil || c == "" || len(c) > MaxLen || strings.ContainsAny(c, ", \t\n-;") {
				t.Fatalf("accepted class %q", c)
			}
		}
	})
}
