package htpasswd

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// Fixed vectors, made by other implementations.
const (
	// Apache's documentation example (htpasswd -nbm myName myPassword).
	apr1MyPassword = "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/"
	// `openssl passwd -apr1 -salt abcdefgh 'p@ss w0rd!'`.
	apr1Spaces = "$apr1$abcdefgh$Zx5npvb9OfDIre7tJqMfC0"
	// `openssl passwd -apr1 -salt x ''`: empty password, short salt.
	apr1Empty = "$apr1$x$tMwYqBfQwi3FYAr0aJc8M/"
	// PHP's password_verify documentation example ("rasmuslerdorf"), a $2y$ hash as Apache writes.
	bcrypt2y = "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"
	// printf rudder | openssl sha1 -binary | base64
	shaRudder = "{SHA}7boq3CT1roNgL7yfeuJITC3fLHA="
)

func bcryptHash(t testing.TB, prefix, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// $2a$, $2b$ and $2y$ hash identically; only the label differs.
	return prefix + string(h[4:])
}

func TestVerify(t *testing.T) {
	long := strings.Repeat("x", 72)
	file := strings.Join([]string{
		"# a comment",
		"",
		"apache:" + apr1MyPassword,
		"spaces:" + apr1Spaces,
		"empty:" + apr1Empty,
		"php:" + bcrypt2y,
		"a2a:" + bcryptHash(t, "$2a$", "two-a"),
		"a2b:" + bcryptHash(t, "$2b$", "two-b"),
		"long:" + bcryptHash(t, "$2y$", long),
		"  rudder:" + shaRudder + "  \r",            // white space and CRLF as Apache strips them
		"rudder:" + bcryptHash(t, "$2y$", "second"), // a later entry of a user is ignored
		"extra:" + shaRudder + ":comment field",
		"des:rqXexS6ZhobKA",
		"plain:rudder",
		"sha512:$6$salt$IxDD3jeSOb5eB1CX5LBsqZFVkJdido3OUILO5Ifz5iwMuTS4XMS130MTSuDDl3aCI6WouIL9AjRbLCelDCy.g.",
		"nohash:",
		"\t# indented comment",
	}, "\n")
	f, err := Parse(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, pw string
		want     bool
	}{
		{"apache", "myPassword", true},
		{"apache", "mypassword", false},
		{"apache", "", false},
		{"spaces", "p@ss w0rd!", true},
		{"spaces", "p@ss w0rd", false},
		{"empty", "", true},
		{"empty", "x", false},
		{"php", "rasmuslerdorf", true},
		{"php", "rasmuslerdorF", false},
		{"a2a", "two-a", true},
		{"a2a", "two-b", false},
		{"a2b", "two-b", true},
		{"long", long, true},
		{"long", long + "ignored as Apache's bcrypt does", true},
		{"long", long[1:], false},
		{"rudder", "rudder", true},
		{"rudder", "second", false},
		{"extra", "rudder", true},
		{"des", "rudder", false},
		{"plain", "rudder", false},
		{"plain", "plain:rudder", false},
		{"sha512", "rudder", false},
		{"nohash", "", false},
		{"nobody", "rudder", false},
		{"", "", false},
		{"# a comment", "", false},
	} {
		if got := f.Verify(c.user, c.pw); got != c.want {
			t.Errorf("Verify(%q, %q) = %v, want %v", c.user, c.pw, got, c.want)
		}
	}
	if got, want := f.Unsupported(), []string{"des", "nohash", "plain", "sha512"}; !slices.Equal(got, want) {
		t.Errorf("Unsupported() = %q, want %q", got, want)
	}
	if got, want := f.Len(), 13; got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
}

func TestAPR1(t *testing.T) {
	for _, c := range []struct{ pw, salt, want string }{
		{"myPassword", "r31.....", apr1MyPassword},
		{"p@ss w0rd!", "abcdefgh", apr1Spaces},
		{"", "x", apr1Empty},
		{"myPassword", "r31.....toolong", apr1MyPassword}, // only 8 bytes of salt count
	} {
		if got := apr1(c.pw, c.salt); got != c.want {
			t.Errorf("apr1(%q, %q) = %q, want %q", c.pw, c.salt, got, c.want)
		}
	}
}

// TestAPR1OpenSSL checks apr1 against openssl's implementation over passwords of every
// length around MD5's 16- and 64-byte boundaries and odd bytes.
func TestAPR1OpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	pws := []string{"rudder", "é☃ unicode", "tab\tand'quote\"", strings.Repeat("0123456789", 20)}
	for n := 0; n <= 70; n += 3 {
		pws = append(pws, strings.Repeat("ab", n)[:n])
	}
	salts := []string{"a", "Zz09./", "12345678"}
	for i, pw := range pws {
		salt := salts[i%len(salts)]
		// -stdin: the password may be empty or start with '-'.
		cmd := exec.Command("openssl", "passwd", "-apr1", "-salt", salt, "-stdin")
		cmd.Stdin = strings.NewReader(pw + "\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl passwd: %v", err)
		}
		want := string(bytes.TrimSpace(out))
		if got := apr1(pw, salt); got != want {
			t.Errorf("apr1(%q, %q) = %q, openssl says %q", pw, salt, got, want)
		}
		f, err := Parse(strings.NewReader("u:" + want + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		if !f.Verify("u", pw) || f.Verify("u", pw+"x") {
			t.Errorf("Verify of openssl's %q for %q is wrong", want, pw)
		}
	}
}

func TestParseBad(t *testing.T) {
	for _, c := range []struct {
		name, file, err string
	}{
		{"no colon", "good:{SHA}x\nbad line\n", "line 2: no ':'"},
		{"empty user", "\n\n:{SHA}x\n", "line 3: empty user"},
		{"empty user after space", "# c\n  :hash", "line 2: empty user"},
		{"long line", "u:" + strings.Repeat("a", maxLineLen), "line 1: longer than"},
		{"long comment", "# " + strings.Repeat("a", maxLineLen), "line 1: longer than"},
		{"too big", strings.Repeat("u:{SHA}x\n", MaxFileSize/9+1), "larger than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(c.file))
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("Parse error %v, want one containing %q", err, c.err)
			}
		})
	}
}

func TestParseEdges(t *testing.T) {
	for _, file := range []string{"", "\n\n", "# only\n# comments", "\r\n \t\n"} {
		f, err := Parse(strings.NewReader(file))
		if err != nil {
			t.Fatalf("Parse(%q): %v", file, err)
		}
		if f.Len() != 0 || f.Verify("", "") {
			t.Errorf("Parse(%q) has users", file)
		}
	}
	// A line of exactly maxLineLen bytes, and a file of exactly MaxFileSize bytes, are fine.
	line := "u:" + strings.Repeat("a", maxLineLen-2)
	if _, err := Parse(strings.NewReader(line)); err != nil {
		t.Errorf("line of %d bytes: %v", len(line), err)
	}
	big := strings.Repeat("#"+strings.Repeat(".", 1022)+"\n", MaxFileSize/1024)
	if _, err := Parse(strings.NewReader(big)); err != nil {
		t.Errorf("file of %d bytes: %v", len(big), err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, []byte("rudder:"+shaRudder+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil || !f.Verify("rudder", "rudder") {
		t.Fatalf("Load: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
	if err := os.WriteFile(path, []byte("\nbad\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("Load of a bad file: %v, want its path and line", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("rudder:"+shaRudder+"\n# c\n\nu:"+apr1MyPassword), "rudder", "rudder")
	f.Add([]byte("php:"+bcrypt2y+"\r\n"), "php", "rasmuslerdorf")
	f.Add([]byte("a:b:c\n:x\nnocolon"), "a", "b")
	f.Add([]byte("u:$apr1$\nv:$apr1$$$\nw:{SHA}\n"), "u", "")
	f.Fuzz(func(t *testing.T, data []byte, user, pw string) {
		file, err := Parse(bytes.NewReader(data))
		if err != nil {
			if !strings.Contains(err.Error(), "line ") && !strings.Contains(err.Error(), "larger than") {
				t.Fatalf("error without a line number: %v", err)
			}
			return
		}
		for _, u := range file.Unsupported() {
			if file.Verify(u, pw) {
				t.Fatalf("unsupported user %q matched", u)
			}
		}
		if e, ok := file.users[user]; ok && e.scheme == schemeBcrypt {
			return // bcrypt's cost comes from the input: too slow for fuzzing
		}
		file.Verify(user, pw) // must not panic
	})
}

func FuzzVerify(f *testing.F) {
	f.Add("myPassword", "r31.....")
	f.Add("", "")
	f.Add("\x00\xff", "$$$$$$$$$$")
	f.Fuzz(func(t *testing.T, pw, salt string) {
		h := apr1(pw, salt)
		if strings.Contains(salt, "$") || strings.ContainsAny(h, ":\n\r \t") {
			return // not a salt htpasswd can hold
		}
		file, err := Parse(strings.NewReader("u:" + h))
		if err != nil {
			t.Fatalf("Parse(%q): %v", h, err)
		}
		if !file.Verify("u", pw) {
			t.Fatalf("apr1 hash %q of %q does not verify", h, pw)
		}
		if file.Verify("u", pw+"x") {
			t.Fatalf("apr1 hash %q of %q verifies another password", h, pw)
		}
	})
}
