package sharedpath

import (
	"net/url"
	"strings"
	"testing"
)

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		prefix, target, source, file, want string
	}{
		{Versioned, "n1", "root", "file-1.txt", "/rudder/relay-api/1/shared-files/n1/root/file-1.txt"},
		{Unversioned, "dst", "src", "f", "/rudder/relay-api/shared-files/dst/src/f"},
		{"", "dst", "src", "f", "/shared-files/dst/src/f"},
		// Not valid ids (package ids refuses them), but escaped, never another route.
		{Versioned, "a/b", "..", "x?y#z", "/rudder/relay-api/1/shared-files/a%2Fb/../x%3Fy%23z"},
		{Versioned, "", " ", "%", "/rudder/relay-api/1/shared-files//%20/%25"},
	} {
		if got := Path(tc.prefix, tc.target, tc.source, tc.file); got != tc.want {
			t.Errorf("Path(%q, %q, %q, %q) = %q, want %q", tc.prefix, tc.target, tc.source, tc.file, got, tc.want)
		}
	}
	if got := FilePath("n1", "root", "f"); got != "/rudder/relay-api/1/shared-files/n1/root/f" {
		t.Errorf("FilePath = %q", got)
	}
}

// FuzzPath: whatever the ids, the path has exactly three elements after the route, and
// they unescape to the ids.
func FuzzPath(f *testing.F) {
	f.Add("n1", "root", "file-1.txt")
	f.Add("a/b", "..", "x?y#z")
	f.Add("", "%2F", "é")
	f.Fuzz(func(t *testing.T, target, source, file string) {
		p := FilePath(target, source, file)
		rest, ok := strings.CutPrefix(p, Versioned+"/"+Segment+"/")
		if !ok {
			t.Fatalf("%q does not start with the route", p)
		}
		parts := strings.Split(rest, "/")
		if len(parts) != 3 {
			t.Fatalf("%q has %d elements after the route, want 3", p, len(parts))
		}
		for i, want := range []string{target, source, file} {
			got, err := url.PathUnescape(parts[i])
			if err != nil || got != want {
				t.Fatalf("element %d of %q unescapes to %q (%v), want %q", i, p, got, err, want)
			}
		}
		if u, err := url.Parse("http://relay" + p); err != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("%q parses with a query or fragment (%v)", p, err)
		}
	})
}
