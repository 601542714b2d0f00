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

func TestValidUUIDs(t *testing.T) {
	const good = "0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4b"
	for _, tc := range []struct {
		in, want string // want: the error of ValidEdgeNodeID, "" when valid
	}{
		{good, ""},
		{strings.ToUpper(good), ""},
		{"", `edge node id "" is not a UUID`},
		{"root", `edge node id "root" is not a UUID`},
		{"node1", `edge node id "node1" is not a UUID`},
		{"../../etc/passwd", `edge node id "../../etc/passwd" is not a UUID`},
		{good + "0", `edge node id "` + good + `0" is not a UUID`},
		{"0b9e2f4a1c3d4e5f8a7b9c0d1e2f3a4b", `edge node id "0b9e2f4a1c3d4e5f8a7b9c0d1e2f3a4b" is not a UUID`},
		{"{0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4b}", `edge node id "{0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4b}" is not a UUID`},
		{"0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4g", `edge node id "0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4g" is not a UUID`},
		{"0b9e2f4a+1c3d-4e5f-8a7b-9c0d1e2f3a4b", `edge node id "0b9e2f4a+1c3d-4e5f-8a7b-9c0d1e2f3a4b" is not a UUID`},
		{strings.Repeat("x", 100000), `edge node id "` + strings.Repeat("x", 64) + `" is not a UUID`},
	} {
		got := ""
		if err := ValidEdgeNodeID(tc.in); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("ValidEdgeNodeID(%.50q) = %q, want %q", tc.in, got, tc.want)
		}
		got = ""
		if err := ValidFleetID(tc.in); err != nil {
			got = err.Error()
		}
		if want := strings.Replace(tc.want, "edge node id", "fleet command id", 1); got != want {
			t.Errorf("ValidFleetID(%.50q) = %q, want %q", tc.in, got, want)
		}
		got = ""
		if err := ValidUUID("challenge id", tc.in); err != nil {
			got = err.Error()
		}
		if want := strings.Replace(tc.want, "edge node id", "challenge id", 1); got != want {
			t.Errorf("ValidUUID(challenge id, %.50q) = %q, want %q", tc.in, got, want)
		}
	}
}

func FuzzValidEdgeNodeID(f *testing.F) {
	for _, s := range []string{"0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4b", "", "root", "0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4", "{0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4}"} {
		f.Add(s)
	}
	re := regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidEdgeNodeID(s)
		if got, want := err == nil, re.MatchString(s); got != want {
			t.Fatalf("ValidEdgeNodeID(%q) ok = %v, want %v", s, got, want)
		}
		if err == nil && ValidNodeID(s) != nil {
			t.Fatalf("%q is an edge node id but not a node id", s)
		}
		if err != nil && len(err.Error()) > 700 { // at most 64 characters, each escaped in at most 10 bytes
			t.Fatalf("error too long: %d bytes", len(err.Error()))
		}
	})
}
