package ids

import (
	"regexp"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for _, s := range []string{
		"root", "e745a140-40bc-4b86-b6dc-084488fc906b", "a", "A_b.c-9", "...", ".a", "a..b", "-",
		strings.Repeat("x", 255),
	} {
		if err := ValidNodeID(s); err != nil {
			t.Errorf("ValidNodeID(%q): %v", s, err)
		}
		if err := ValidFileID(s); err != nil {
			t.Errorf("ValidFileID(%q): %v", s, err)
		}
	}
}

func TestInvalid(t *testing.T) {
	const rule = `must be 1 to 255 characters among A-Z a-z 0-9 _ . - and not "." or ".."`
	tests := []struct{ in, want string }{
		{"", `invalid file id "": ` + rule},
		{".", `invalid file id ".": ` + rule},
		{"..", `invalid file id "..": ` + rule},
		{"a/b", `invalid file id "a/b": ` + rule},
		{"../etc", `invalid file id "../etc": ` + rule},
		{"a b", `invalid file id "a b": ` + rule},
		{"a\x00", `invalid file id "a\x00": ` + rule},
		{"a\n", `invalid file id "a\n": ` + rule},
		{"é", `invalid file id "é": ` + rule},
		{"a%2F", `invalid file id "a%2F": ` + rule},
		{"a\\b", `invalid file id "a\\b": ` + rule},
		{strings.Repeat("x", 256), `invalid file id "` + strings.Repeat("x", 32) + `"... (256 bytes): ` + rule},
	}
	for _, tt := range tests {
		err := ValidFileID(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ValidFileID(%q) = %v\nwant %s", tt.in, err, tt.want)
		}
		err = ValidNodeID(tt.in)
		if want := strings.Replace(tt.want, "file id", "node id", 1); err == nil || err.Error() != want {
			t.Errorf("ValidNodeID(%q) = %v\nwant %s", tt.in, err, want)
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range []string{"root", "", ".", "..", "a/b", "a\x00", "é", strings.Repeat("x", 256)} {
		f.Add(s)
	}
	re := regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	f.Fuzz(func(t *testing.T, s string) {
		want := re.MatchString(s) && len(s) <= MaxLen && s != "." && s != ".."
		if got := ValidFileID(s) == nil; got != want {
			t.Fatalf("ValidFileID(%q) ok = %v, want %v", s, got, want)
		}
		if got := ValidNodeID(s) == nil; got != want {
			t.Fatalf("ValidNodeID(%q) ok = %v, want %v", s, got, want)
		}
	})
}
