package keyhash

import (
	"bufio"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"strings"
	"testing"
)

// loadKey reads an RSA private key PEM made by "openssl genrsa" (PKCS#8 with
// OpenSSL 3, PKCS#1 before).
func loadKey(t *testing.T, path string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return k.(*rsa.PrivateKey)
}

// opensslPins returns the pins testdata/make-fixtures.sh computed with openssl.
func opensslPins(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("testdata/pins.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pins []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pins = append(pins, sc.Text())
	}
	if len(pins) != 4 {
		t.Fatalf("testdata/pins.txt: %d pins, want 4", len(pins))
	}
	return pins
}

func TestOpenSSLPins(t *testing.T) {
	key := loadKey(t, "testdata/key.pem")
	other := loadKey(t, "testdata/other.pem")
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pins := opensslPins(t)
	for _, s := range pins {
		p, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if !p.MatchRSA(&key.PublicKey) {
			t.Errorf("%s: does not match key.pem", s)
		}
		if !p.MatchSPKI(der) {
			t.Errorf("%s: does not match key.pem's SPKI DER", s)
		}
		if p.MatchRSA(&other.PublicKey) {
			t.Errorf("%s: matches other.pem", s)
		}
		if p.MatchSPKI(der[1:]) {
			t.Errorf("%s: matches truncated DER", s)
		}
	}
	// The hex and base64 forms are the same pin, and String gives the base64 form.
	for i, j := range []int{2, 3} {
		a, _ := Parse(pins[i])
		b, _ := Parse(pins[j])
		if a.String() != pins[i] || b.String() != pins[i] {
			t.Errorf("String() = %q, %q; want %q", a, b, pins[i])
		}
	}
}

func TestParse(t *testing.T) {
	sum256 := strings.Repeat("ab", 32)
	tests := []struct {
		in   string
		hash crypto.Hash
		str  string
	}{
		{"sha256:" + sum256, crypto.SHA256, "sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="},
		{"sha256:" + strings.ToUpper(sum256), crypto.SHA256, "sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="},
		{"sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=", crypto.SHA256, "sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="},
		{"sha512:" + strings.Repeat("00", 64), crypto.SHA512, "sha512//" + strings.Repeat("A", 86) + "=="},
		{"sha512//" + strings.Repeat("A", 86) + "==", crypto.SHA512, "sha512//" + strings.Repeat("A", 86) + "=="},
		{"sha256//kGGR7iJmbBYCqkM5EAC8TuCpR3X2jE+9wbKHz1Kxh1w=", crypto.SHA256, "sha256//kGGR7iJmbBYCqkM5EAC8TuCpR3X2jE+9wbKHz1Kxh1w="},
	}
	for _, tt := range tests {
		p, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if p.Hash != tt.hash || p.String() != tt.str {
			t.Errorf("Parse(%q) = %v %s, want %v %s", tt.in, p.Hash, p, tt.hash, tt.str)
		}
	}
}

func TestParseBad(t *testing.T) {
	const forms = "want sha256:<hex>, sha512:<hex>, sha256//<base64> or sha512//<base64>"
	tests := []struct{ in, want string }{
		{"", `invalid key hash "": ` + forms},
		{"sha256", `invalid key hash "sha256": ` + forms},
		{"sha256:", `invalid key hash "sha256:": no hash value`},
		{"sha256//", `invalid key hash "sha256//": no hash value`},
		{"sha256/abcd", `invalid key hash "sha256/abcd": ` + forms},
		{"md5:d41d8cd98f00b204e9800998ecf8427e", `invalid key hash "md5:d41d8cd98f00b204e9800998ecf8427e": unknown algorithm "md5" (want sha256 or sha512)`},
		{"SHA256:" + strings.Repeat("ab", 32), `invalid key hash "SHA256:` + strings.Repeat("ab", 32) + `": unknown algorithm "SHA256" (want sha256 or sha512)`},
		{"sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709", `invalid key hash "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709": unknown algorithm "sha1" (want sha256 or sha512)`},
		{"sha256:zz", `invalid key hash "sha256:zz": encoding/hex: invalid byte: U+007A 'z'`},
		{"sha256:abc", `invalid key hash "sha256:abc": encoding/hex: odd length hex string`},
		{"sha256:abcd", `invalid key hash "sha256:abcd": 2 bytes, want 32 for sha256`},
		{"sha512:" + strings.Repeat("ab", 32), `invalid key hash "sha512:` + strings.Repeat("ab", 32) + `": 32 bytes, want 64 for sha512`},
		{"sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6t=", `invalid key hash "sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6t=": illegal base64 data at input byte 43`},
		{"sha256//q6ur!", `invalid key hash "sha256//q6ur!": illegal base64 data at input byte 4`},
		{"sha256//q6ur", `invalid key hash "sha256//q6ur": 3 bytes, want 32 for sha256`},
		{"sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s", `invalid key hash "sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s": the base64 value must be padded with "=" (as Rudder writes it)`},
		{"sha512//" + strings.Repeat("A", 86), `invalid key hash "sha512//` + strings.Repeat("A", 86) + `": the base64 value must be padded with "=" (as Rudder writes it)`},
		{"sha512//" + strings.Repeat("A", 86) + "=", `invalid key hash "sha512//` + strings.Repeat("A", 86) + `=": illegal base64 data at input byte 87`},
		{"sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s==", `invalid key hash "sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s==": illegal base64 data at input byte 44`},
		{"sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n", `invalid key hash "sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n": the base64 value has a line break`},
		{"sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6\r\nurq6s=", `invalid key hash "sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6\r\nurq6s=": the base64 value has a line break`},
		{"sha256//q6ur-_urq6urq6urq6urq6urq6urq6urq6urq6urq6s=", `invalid key hash "sha256//q6ur-_urq6urq6urq6urq6urq6urq6urq6urq6urq6s=": illegal base64 data at input byte 4`},
		{"sha256//***", `invalid key hash "sha256//***": illegal base64 data at input byte 0`},
		{"sha256:ab//cd", `invalid key hash "sha256:ab//cd": encoding/hex: invalid byte: U+002F '/'`},
		{" sha256:" + strings.Repeat("ab", 32), `invalid key hash " sha256:` + strings.Repeat("ab", 32) + `": unknown algorithm " sha256" (want sha256 or sha512)`},
	}
	for _, tt := range tests {
		p, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want error", tt.in, p)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Parse(%q) error\n got: %s\nwant: %s", tt.in, err, tt.want)
		}
	}
}

func TestZeroPin(t *testing.T) {
	var p Pin
	if p.MatchSPKI(nil) || p.MatchSPKI([]byte("x")) || p.MatchRSA(nil) || p.MatchRSA(&rsa.PublicKey{}) {
		t.Error("zero Pin matched")
	}
	p = Pin{Hash: crypto.SHA256, Sum: []byte{1}}
	if p.MatchSPKI(nil) {
		t.Error("short Pin matched")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"sha256:", "sha256//", "sha256:" + strings.Repeat("ab", 32),
		"sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=", "sha512//" + strings.Repeat("A", 86),
		"sha512//" + strings.Repeat("A", 86) + "==", "sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s",
		"md5:00", "sha256/x", "sha256:ab//cd", "", "sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		if len(p.Sum) != p.Hash.Size() {
			t.Fatalf("Parse(%q): %d-byte sum for %v", s, len(p.Sum), p.Hash)
		}
		// A base64 pin is accepted only in its one canonical (padded) form, which String gives;
		// a hex pin only as the hex of its sum, in either case.
		if _, _, b64 := strings.Cut(s, "//"); b64 && p.String() != s {
			t.Fatalf("Parse(%q) accepted a base64 pin String gives as %q", s, p)
		} else if !b64 {
			algo, v, _ := strings.Cut(s, ":")
			if algo+":"+hex.EncodeToString(p.Sum) != strings.ToLower(algo)+":"+strings.ToLower(v) {
				t.Fatalf("Parse(%q) accepted a hex pin that is not the hex of %x", s, p.Sum)
			}
		}
		// String gives a form that parses back to the same pin.
		q, err := Parse(p.String())
		if err != nil || q.Hash != p.Hash || string(q.Sum) != string(p.Sum) {
			t.Fatalf("Parse(%q) round trip: %v, %v", p.String(), q, err)
		}
	})
}

// TestOf: the pin Of computes is the one openssl computed for the same key, and Of refuses
// what is not a public key.
func TestOf(t *testing.T) {
	key := loadKey(t, "testdata/key.pem")
	var want string
	for _, s := range opensslPins(t) {
		if strings.HasPrefix(s, "sha256//") {
			want = s
		}
	}
	if want == "" {
		t.Fatal("testdata/pins.txt holds no sha256// pin")
	}
	p, err := Of(&key.PublicKey)
	if err != nil || p.String() != want || !p.MatchRSA(&key.PublicKey) {
		t.Errorf("Of = %v, %v; want %s", p, err, want)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if got := OfSPKI(der).String(); got != want {
		t.Errorf("OfSPKI = %s, want %s", got, want)
	}
	if _, err := Of("not a key"); err == nil {
		t.Error("Of(string): no error")
	}
}
