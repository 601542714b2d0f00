package admintoken

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const good = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParse(t *testing.T) {
	for _, in := range []string{good, good + "\n", good + "\r\n"} {
		if tok, err := Parse([]byte(in)); err != nil || tok.text != good {
			t.Errorf("Parse(%q): %v %v", in, tok, err)
		}
	}
	bad := map[string]string{
		"empty":           "",
		"newline only":    "\n",
		"short":           good[:63],
		"long":            good + "0",
		"upper case":      strings.ToUpper(good),
		"not hex":         "g" + good[1:],
		"space inside":    good[:32] + " " + good[33:],
		"two newlines":    good + "\n\n",
		"leading space":   " " + good[1:],
		"a second line":   good + "\n" + good,
		"NUL":             good[:63] + "\x00",
		"non-UTF-8 bytes": good[:62] + "\xff\xfe",
	}
	for name, in := range bad {
		if tok, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: Parse(%q) = %v, want an error", name, in, tok)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{good, good + "\n", "", "\n", strings.ToUpper(good)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := Parse(b)
		if err != nil {
			return
		}
		if len(tok.text) != 64 || !strings.HasPrefix(string(b), tok.text) {
			t.Fatalf("Parse(%q) = %q", b, tok.text)
		}
		again, err := Parse([]byte(tok.text))
		if err != nil || again != tok {
			t.Fatalf("the parsed token does not parse to itself: %v %v", again, err)
		}
	})
}

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dir", "admin.token")
	if _, err := Load(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v", err)
	}
	a, err := LoadOrCreate(path)
	if err != nil || a.IsZero() {
		t.Fatalf("LoadOrCreate: %v %v", a, err)
	}
	b, err := LoadOrCreate(path)
	if err != nil || b != a {
		t.Fatalf("second LoadOrCreate: another token or %v", err)
	}
	if fi, err := os.Stat(path); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Fatalf("token file: %v %v, want mode 0600", fi, err)
	}
	if err := os.WriteFile(path, []byte("not a token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadOrCreate of a corrupt file: %v, want an error naming it (and no new token)", err)
	}
	if runtime.GOOS != "windows" {
		if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("Load of a 0644 token file: %v", err)
		}
	}
}

func TestAuthorized(t *testing.T) {
	tok, _ := Parse([]byte(good))
	other := strings.Repeat("a", 64)
	tests := []struct {
		name   string
		header string
		want   bool
	}{
		{"no header", "", false},
		{"right token", "Bearer " + good, true},
		{"scheme in lower case", "bearer " + good, true},
		{"wrong token", "Bearer " + other, false},
		{"token alone", good, false},
		{"basic auth", "Basic " + good, false},
		{"truncated token", "Bearer " + good[:63], false},
		{"token with more", "Bearer " + good + "x", false},
		{"empty credentials", "Bearer ", false},
	}
	for _, tc := range tests {
		r, _ := http.NewRequest(http.MethodGet, "http://relay/status", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		if got := tok.Authorized(r); got != tc.want {
			t.Errorf("%s: Authorized = %v, want %v", tc.name, got, tc.want)
		}
		if !(Token{}).Authorized(r) {
			t.Errorf("%s: no token refused a request", tc.name)
		}
	}
	r, _ := http.NewRequest(http.MethodGet, "http://relay/status", nil)
	tok.Set(r)
	if !tok.Authorized(r) {
		t.Error("a request given the token by Set is refused")
	}
}
