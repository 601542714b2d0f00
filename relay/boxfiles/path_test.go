package boxfiles

import (
	"errors"
	"strings"
	"testing"
)

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{"/file", "file", false},
		{"/a/b/c", "a/b/c", false},
		{"//a///b", "a/b", false},
		{"/./a/./b", "a/b", false},
		{"/a/b/", "a/b/", false},
		{"/a//", "a/", false},
		{"", "", false},
		{"/", "", false},
		{"/./", "", false},
		{"/name with space", "name with space", false},
		{"/.hidden", ".hidden", false},
		{"/a.../b", "a.../b", false},
		{"/..", "", true},
		{"/a/../b", "", true},
		{"/a/..", "", true},
		{"/...", "", true},
		{"/..foo", "", true},
		{"/a\\b", "", true},
		{"/\\etc\\passwd", "", true},
		{"/a\x00b", "", true},
		// An absolute path inside: its slashes collapse, it stays under the root.
		{"//etc/passwd", "etc/passwd", false},
	}
	for _, tt := range tests {
		got, err := cleanPath(tt.in)
		if tt.bad {
			if !errors.Is(err, errBadPath) {
				t.Errorf("cleanPath(%q) = %q, %v; want errBadPath", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("cleanPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzSharedFolderPath: cleanPath never yields a name that leaves the root, holds a
// backslash or NUL, is absolute, or has an empty, "." or ".." segment; and a name it
// accepts is a fixed point.
func FuzzSharedFolderPath(f *testing.F) {
	for _, s := range []string{"/a/b", "/../x", "//a//b/", "/a\\b", "/..%2F", "/.", "/a/./b/..c", "", "/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := cleanPath(p)
		if err != nil {
			if !errors.Is(err, errBadPath) {
				t.Fatalf("cleanPath(%q): error %v is not errBadPath", p, err)
			}
			return
		}
		if strings.HasPrefix(got, "/") || strings.ContainsAny(got, "\\\x00") {
			t.Fatalf("cleanPath(%q) = %q", p, got)
		}
		for _, seg := range strings.Split(strings.TrimSuffix(got, "/"), "/") {
			if got != "" && (seg == "" || seg == "." || strings.HasPrefix(seg, "..")) {
				t.Fatalf("cleanPath(%q) = %q: segment %q", p, got, seg)
			}
		}
		again, err := cleanPath("/" + got)
		if err != nil || again != got {
			t.Fatalf("cleanPath(/%q) = %q, %v; want it unchanged", got, again, err)
		}
	})
}

func TestParseHash(t *testing.T) {
	const sha256Hex = "181210f8f9c779c26da1d9b2075bde0127302ee0e3fca38c9a83f5b1dd8e5d3b"
	sha512Hex := strings.Repeat("ab", 64)
	tests := []struct {
		typ, hash string
		size      int
	}{
		{"", sha256Hex, 32},
		{"sha256", sha256Hex, 32},
		{"SHA256", strings.ToUpper(sha256Hex), 32},
		{"sha512", sha512Hex, 64},
		{"sha512", sha256Hex, 0},          // too short for the type
		{"", sha512Hex, 0},                // too long for sha256
		{"md5", sha256Hex, 0},             // unknown type
		{"sha-256", sha256Hex, 0},         // unknown type
		{"", sha256Hex[:63] + "g", 0},     // not hex
		{"", sha256Hex[:63], 0},           // odd length
		{"", " " + sha256Hex[1:], 0},      // not hex
		{"sha512", sha512Hex + "00", 0},   // too long
		{"sha256", sha256Hex + "\x00", 0}, // NUL
	}
	for _, tt := range tests {
		sum, digest, err := parseHash(tt.typ, tt.hash)
		if tt.size == 0 {
			if !errors.Is(err, errBadHash) {
				t.Errorf("parseHash(%q, %q): %v, want errBadHash", tt.typ, tt.hash, err)
			}
			continue
		}
		if err != nil || sum.Size() != tt.size || len(digest) != tt.size {
			t.Errorf("parseHash(%q, %q) = %v, %d bytes, %v; want a %d-byte hash", tt.typ, tt.hash, sum, len(digest), err, tt.size)
		}
	}
}

// FuzzParseHash: parseHash accepts only a digest exactly as long as its type's, and never panics.
func FuzzParseHash(f *testing.F) {
	f.Add("", "181210f8f9c779c26da1d9b2075bde0127302ee0e3fca38c9a83f5b1dd8e5d3b")
	f.Add("sha512", "00")
	f.Add("SHA512", strings.Repeat("F", 128))
	f.Fuzz(func(t *testing.T, typ, hash string) {
		sum, digest, err := parseHash(typ, hash)
		if err != nil {
			return
		}
		if len(digest) != sum.Size() || len(hash) != 2*sum.Size() {
			t.Fatalf("parseHash(%q, %q): %d-byte digest for a %d-byte hash", typ, hash, len(digest), sum.Size())
		}
	})
}
