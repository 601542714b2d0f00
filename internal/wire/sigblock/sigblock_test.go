package sigblock

import (
	"bufio"
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// The fixtures testdata/make-fixtures.sh made with openssl.
var fixtures = []struct {
	sign, key, algorithm string
	bits                 int
}{
	{"file.sha1.sign", "key.pem", "sha1", 2048},
	{"file.sha256.sign", "key.pem", "sha256", 2048},
	{"file.sha512.sign", "key.pem", "sha512", 2048},
	{"file.sha512-4096.sign", "key4096.pem", "sha512", 4096},
}

const (
	fixHostname = "node1.example.org"
	fixKeyDate  = "2024-05-06 07:08:09.123456789 +0200"
	fixKeyID    = "0A1B2C3D"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadKey reads an RSA private key PEM made by "openssl genrsa".
func loadKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	blk, _ := pemDecode(readFile(t, name))
	if blk == nil {
		t.Fatalf("%s: no PEM block", name)
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk); err == nil {
		return k
	}
	k, err := x509.ParsePKCS8PrivateKey(blk)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return k.(*rsa.PrivateKey)
}

// putBody is what an agent sends: "echo | cat file.sign - file".
func putBody(sign, file []byte) []byte {
	return append(append(append([]byte{}, sign...), '\n'), file...)
}

// readAll parses body with a small buffer (so lines span several reads) and
// returns the block and what is left for the file content.
func readAll(t testing.TB, body []byte) (*Block, []byte, error) {
	t.Helper()
	r := bufio.NewReaderSize(bytes.NewReader(body), 16)
	b, err := Read(r)
	if err != nil {
		return nil, nil, err
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b, rest, nil
}

func sumOf(b *Block, file []byte) []byte {
	h := b.NewHash()
	h.Write(file)
	return h.Sum(nil)
}

func TestOpenSSLFixtures(t *testing.T) {
	file := readFile(t, "file")
	for _, fx := range fixtures {
		t.Run(fx.sign, func(t *testing.T) {
			sign := readFile(t, fx.sign)
			key := loadKey(t, fx.key)
			b, rest, err := readAll(t, putBody(sign, file))
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if !bytes.Equal(rest, file) {
				t.Errorf("content after the block = %q, want %q", rest, file)
			}
			if !bytes.Equal(b.Raw, sign) {
				t.Errorf("Raw = %q, want %q", b.Raw, sign)
			}
			if b.Algorithm != fx.algorithm || b.Hostname != fixHostname || b.KeyDate != fixKeyDate || b.KeyID != fixKeyID || b.TTL != "" {
				t.Errorf("fields: %q %q %q %q %q", b.Algorithm, b.Hostname, b.KeyDate, b.KeyID, b.TTL)
			}
			if len(b.Fields) != 8 || b.Fields[0] != (Field{"header", "rudder-signature-v1"}) {
				t.Errorf("Fields = %q", b.Fields)
			}
			if !key.PublicKey.Equal(b.PublicKey) || b.PublicKey.N.BitLen() != fx.bits {
				t.Errorf("short_pubkey is not the public key of %s", fx.key)
			}
			sum := sumOf(b, file)
			if b.HashValue != hex.EncodeToString(sum) {
				t.Errorf("hash_value %s, Go computes %x", b.HashValue, sum)
			}
			if err := b.Verify(sum); err != nil {
				t.Errorf("Verify: %v", err)
			}

			// A tampered file fails.
			bad := bytes.Clone(file)
			bad[len(bad)-1] ^= 1
			if err := b.Verify(sumOf(b, bad)); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify(tampered file) = %v, want ErrBadSignature", err)
			}
			// A tampered digest parses but fails.
			i := bytes.Index(sign, []byte("\ndigest=")) + len("\ndigest=")
			tampered := bytes.Clone(sign)
			if tampered[i] == '0' {
				tampered[i] = '1'
			} else {
				tampered[i] = '0'
			}
			b2, _, err := readAll(t, putBody(tampered, file))
			if err != nil {
				t.Fatalf("Read(tampered digest): %v", err)
			}
			if err := b2.Verify(sum); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify(tampered digest) = %v, want ErrBadSignature", err)
			}
			// A hash of the wrong size is an error, not a bad signature.
			if err := b.Verify(sum[:len(sum)-1]); err == nil || errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify(short sum) = %v, want a non-signature error", err)
			}
		})
	}
}

// TestSignMatchesOpenSSL: PKCS#1 v1.5 signatures are deterministic, so Sign
// must reproduce the openssl-made fixtures byte for byte.
func TestSignMatchesOpenSSL(t *testing.T) {
	file := readFile(t, "file")
	for _, fx := range fixtures {
		b, err := Sign(loadKey(t, fx.key), fx.algorithm, bytes.NewReader(file), fixHostname, fixKeyDate, fixKeyID, "")
		if err != nil {
			t.Fatalf("%s: Sign: %v", fx.sign, err)
		}
		if want := readFile(t, fx.sign); !bytes.Equal(b.Raw, want) {
			t.Errorf("%s: Sign gives\n%s\nwant\n%s", fx.sign, b.Raw, want)
		}
	}
}

// TestSignVerifiedByOpenSSL checks Go-made signatures with the openssl CLI.
func TestSignVerifiedByOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not on PATH")
	}
	key := loadKey(t, "key.pem")
	file := []byte("some\x00binary\r\n\ncontent\xff")
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	for _, alg := range []string{"sha1", "sha256", "sha512"} {
		b, err := Sign(key, alg, bytes.NewReader(file), "node1", "today", "42", "1d 2h")
		if err != nil {
			t.Fatalf("Sign(%s): %v", alg, err)
		}
		for name, data := range map[string][]byte{"sig.bin": b.Digest, "file": file, "tampered": append(bytes.Clone(file), '!')} {
			if err := os.WriteFile(path(name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command(openssl, "dgst", "-"+alg, "-verify", "testdata/pub.pem", "-signature", path("sig.bin"), path("file")).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "Verified OK" {
			t.Errorf("%s: openssl verify: %v: %s", alg, err, out)
		}
		out, err = exec.Command(openssl, "dgst", "-"+alg, "-verify", "testdata/pub.pem", "-signature", path("sig.bin"), path("tampered")).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Verification failure") {
			t.Errorf("%s: openssl verify of a tampered file: %v: %s", alg, err, out)
		}
		out, err = exec.Command(openssl, "dgst", "-"+alg, "-hex", path("file")).Output()
		if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "= "+b.HashValue) {
			t.Errorf("%s: hash_value %s, openssl says %s (%v)", alg, b.HashValue, out, err)
		}

		// Round trip: what WriteTo writes, Read reads back as the same block.
		var body bytes.Buffer
		if n, err := b.WriteTo(&body); err != nil || n != int64(len(b.Raw)+1) {
			t.Fatalf("WriteTo = %d, %v", n, err)
		}
		body.Write(file)
		got, rest, err := readAll(t, body.Bytes())
		if err != nil {
			t.Fatalf("%s: Read(WriteTo): %v", alg, err)
		}
		if !bytes.Equal(rest, file) || !bytes.Equal(got.Raw, b.Raw) || !equalFields(got.Fields, b.Fields) ||
			got.TTL != "1d 2h" || got.HashValue != b.HashValue || !got.PublicKey.Equal(b.PublicKey) {
			t.Errorf("%s: round trip differs:\n%+v\n%+v", alg, got, b)
		}
		if err := got.Verify(sumOf(got, file)); err != nil {
			t.Errorf("%s: Verify: %v", alg, err)
		}
	}
}

func equalFields(a, b []Field) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSignBad(t *testing.T) {
	key := loadKey(t, "key.pem")
	tests := []struct {
		algorithm, hostname, ttl, want string
	}{
		{"md5", "h", "", `signing with algorithm "md5": unknown algorithm, want sha1, sha256 or sha512`},
		{"SHA256", "h", "", `signing with algorithm "SHA256": unknown algorithm, want sha1, sha256 or sha512`},
		{"sha256", "h\nx=y", "", `signing: hostname: "h\nx=y" holds a control character`},
		{"sha256", " h", "", `signing: hostname " h": leading or trailing space`},
		{"sha256", "h", "1d\r", `signing: ttl: "1d\r" holds a control character`},
	}
	for _, tt := range tests {
		_, err := Sign(key, tt.algorithm, strings.NewReader("x"), tt.hostname, "", "", tt.ttl)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Sign(%q, %q, %q) = %v\nwant %s", tt.algorithm, tt.hostname, tt.ttl, err, tt.want)
		}
	}
	readErr := errors.New("disk on fire")
	if _, err := Sign(key, "sha256", iotest.ErrReader(readErr), "", "", "", ""); !errors.Is(err, readErr) {
		t.Errorf("Sign(failing reader) = %v", err)
	}
	if _, err := Sign(nil, "sha256", strings.NewReader(""), "", "", "", ""); err == nil {
		t.Error("Sign(nil key) succeeded")
	}
}

// pubkeyOf returns a short_pubkey value for a made-up key of the given size
// (good enough to parse; nothing verifies with it).
func pubkeyOf(bits int) string {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.SetBit(n, 0, 1)
	return base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(&rsa.PublicKey{N: n, E: 65537}))
}

// fixtureLines returns the lines of the openssl sha256 block, without endings.
func fixtureLines(t testing.TB) []string {
	return strings.Split(strings.TrimSuffix(string(readFile(t, "file.sha256.sign")), "\n"), "\n")
}

// edit returns a copy of lines with line i (0-based) replaced by repl (or
// removed when repl is empty).
func edit(lines []string, i int, repl ...string) []string {
	return append(append(append([]string{}, lines[:i]...), repl...), lines[i+1:]...)
}

// join joins lines, each ending in eol ("\n" when empty).
func join(lines []string, eol string) string {
	if eol == "" {
		eol = "\n"
	}
	return strings.Join(lines, eol) + eol
}

func TestReadGood(t *testing.T) {
	lines := fixtureLines(t)
	block := join(lines, "")
	tests := []struct {
		name, block, sep string
		check            func(*Block) bool
	}{
		{"LF", block, "\n", nil},
		{"CRLF lines and empty line", join(lines, "\r\n"), "\r\n", nil},
		{"LF lines, CRLF empty line", block, "\r\n", nil},
		{"CRLF lines, LF empty line", join(lines, "\r\n"), "\n", nil},
		{"mixed line endings", strings.Replace(block, "\n", "\r\n", 3), "\n", nil},
		{"spaces around =", join(edit(edit(lines, 1, " algorithm \t=  sha256 "), 5, "hostname = host x "), ""), "\n", func(b *Block) bool {
			return b.Algorithm == "sha256" && b.Hostname == "host x" && b.Fields[1] == Field{"algorithm", "sha256"}
		}},
		{"unknown keys kept, expires ignored", join(edit(lines, 7, "keyid=1", "expires=1", "x-y=a=b", "ttl=1d", "empty="), ""), "\n", func(b *Block) bool {
			n := len(b.Fields)
			return b.KeyID == "1" && b.TTL == "1d" && n == 12 && b.Fields[n-4] == Field{"expires", "1"} &&
				b.Fields[n-3] == Field{"x-y", "a=b"} && b.Fields[n-1] == Field{"empty", ""}
		}},
		{"optional lines absent", join(lines[:5], ""), "\n", func(b *Block) bool {
			return b.Hostname == "" && b.KeyDate == "" && b.KeyID == "" && len(b.Fields) == 5
		}},
		{"1024-bit key", join(edit(lines, 4, "short_pubkey="+pubkeyOf(1024)), ""), "\n", func(b *Block) bool { return b.PublicKey.N.BitLen() == 1024 }},
		{"8192-bit key", join(edit(lines, 4, "short_pubkey="+pubkeyOf(8192)), ""), "\n", func(b *Block) bool { return b.PublicKey.N.BitLen() == 8192 }},
		{"unpadded short_pubkey", join(edit(lines, 4, "short_pubkey="+strings.TrimRight(pubkeyOf(2047), "=")), ""), "\n", nil},
		{"upper-case hex digest", join(edit(lines, 2, "digest="+strings.ToUpper(lines[2][7:])), ""), "\n", nil},
		{"tab and UTF-8 in values", join(edit(edit(lines, 5, "hostname=\tnœud"), 6, "keydate=2024\t12:00 é"), ""), "\n", func(b *Block) bool {
			return b.Hostname == "nœud" && b.KeyDate == "2024\t12:00 é"
		}},
		{"exactly MaxSize", block + "pad=" + strings.Repeat("a", MaxSize-len(block)-len("pad=\n\n")) + "\n", "\n", nil},
	}
	for _, tt := range tests {
		// Binary content, with empty lines, CRs and what looks like a header.
		for _, content := range []string{"\n\r\n\r\nheader=rudder-signature-v1\n\x00\xff\r", ""} {
			t.Run(tt.name, func(t *testing.T) {
				b, rest, err := readAll(t, []byte(tt.block+tt.sep+content))
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				if string(b.Raw) != tt.block {
					t.Errorf("Raw = %q, want %q", b.Raw, tt.block)
				}
				if string(rest) != content {
					t.Errorf("content = %q, want %q", rest, content)
				}
				if tt.check != nil && !tt.check(b) {
					t.Errorf("unexpected block: %+v", b)
				}
			})
		}
	}
}

func TestReadBad(t *testing.T) {
	lines := fixtureLines(t)
	block := join(lines, "")
	const m = "malformed signature block: "
	var many strings.Builder
	for i := 0; many.Len() <= MaxSize; i++ {
		fmt.Fprintf(&many, "k%06d=y\n", i)
	}
	manyLine := 8 + (MaxSize-len(block))/10 + 1
	tests := []struct{ name, body, want string }{
		{"empty input", "", m + "line 1: input ends before the empty line that ends the block"},
		{"empty first line", "\nheader=rudder-signature-v1\n", m + `line 1: empty, want "header=rudder-signature-v1"`},
		{"missing header", join(edit(lines, 0), "") + "\n", m + `line 1: "algorithm=sha256", want "header=rudder-signature-v1"`},
		{"wrong header", join(edit(lines, 0, "header=rudder-signature-v2"), "") + "\n", m + `line 1: "header=rudder-signature-v2", want "header=rudder-signature-v1"`},
		{"header with spaces", join(edit(lines, 0, "header = rudder-signature-v1"), "") + "\n", m + `line 1: "header = rudder-signature-v1", want "header=rudder-signature-v1"`},
		{"header not first", join(edit(lines, 0, "algorithm=sha256", "header=rudder-signature-v1"), "") + "\n", m + `line 1: "algorithm=sha256", want "header=rudder-signature-v1"`},
		{"duplicated key", join(edit(lines, 2, lines[2], lines[2]), "") + "\n", m + `line 4: key "digest" given twice`},
		{"duplicated key with spaces", join(edit(lines, 5, lines[5], " hostname =x"), "") + "\n", m + `line 7: key "hostname" given twice`},
		{"duplicated header", join(edit(lines, 7, lines[7], "header=rudder-signature-v1"), "") + "\n", m + `line 9: key "header" given twice`},
		{"duplicated ttl", block + "ttl=1d\nttl=2d\n\n", m + `line 10: key "ttl" given twice`},
		{"unknown algorithm", join(edit(lines, 1, "algorithm=md5"), "") + "\n", m + `algorithm "md5": unknown algorithm, want sha1, sha256 or sha512`},
		{"upper-case algorithm", join(edit(lines, 1, "algorithm=SHA256"), "") + "\n", m + `algorithm "SHA256": unknown algorithm, want sha1, sha256 or sha512`},
		{"no algorithm", join(edit(lines, 1), "") + "\n", m + `no "algorithm" line`},
		{"no digest", join(edit(lines, 2), "") + "\n", m + `no "digest" line`},
		{"no short_pubkey", join(edit(lines, 4), "") + "\n", m + `no "short_pubkey" line`},
		{"bad hex", join(edit(lines, 2, "digest=abcg"), "") + "\n", m + `digest "abcg": encoding/hex: invalid byte: U+0067 'g'`},
		{"odd hex", join(edit(lines, 2, "digest=abc"), "") + "\n", m + `digest "abc": encoding/hex: odd length hex string`},
		{"empty digest", join(edit(lines, 2, "digest="), "") + "\n", m + `digest "": empty`},
		{"bad base64", join(edit(lines, 4, "short_pubkey=MIIB*Cg=="), "") + "\n", m + `short_pubkey "MIIB*Cg==": illegal base64 data at input byte 4`},
		{"empty short_pubkey", join(edit(lines, 4, "short_pubkey="), "") + "\n", m + `short_pubkey "": asn1: syntax error: sequence truncated`},
		{"bad key", join(edit(lines, 4, "short_pubkey=aGVsbG8="), "") + "\n", m + `short_pubkey "aGVsbG8=": asn1: structure error: tags don't match*`},
		{"PKIX key", join(edit(lines, 4, "short_pubkey="+pkixOf(t)), "") + "\n", m + `short_pubkey "` + clip(pkixOf(t)) + `": x509: failed to parse public key (use ParsePKIXPublicKey instead for this key format)`},
		{"512-bit key", join(edit(lines, 4, "short_pubkey="+pubkeyOf(512)), "") + "\n", m + `short_pubkey "` + pubkeyOf(512)[:80] + `...": 512-bit RSA key, want 1024 to 8192 bits`},
		{"8193-bit key", join(edit(lines, 4, "short_pubkey="+pubkeyOf(8193)), "") + "\n", m + `short_pubkey "` + pubkeyOf(8193)[:80] + `...": 8193-bit RSA key, want 1024 to 8192 bits`},
		{"line without =", block + "garbage\n\n", m + `line 9: "garbage" is not key=value`},
		{"whitespace-only line", block + " \n\n", m + `line 9: " " is not key=value`},
		{"empty key", block + " =x\n\n", m + `line 9: " =x" has an empty key`},
		{"control character", block + "x=a\x00b\n\n", m + `line 9: "x=a\x00b" holds a control character`},
		{"CR inside a line", block + "x=a\rb\n\n", m + `line 9: "x=a\rb" holds a control character`},
		{"CR CR LF", block + "x=a\r\r\n\n", m + `line 9: "x=a\r" holds a control character`},
		{"invalid UTF-8", block + "x=\xff\n\n", m + `line 9: "x=\xff" is not valid UTF-8`},
		{"no empty line", block, m + "line 9: input ends before the empty line that ends the block"},
		{"no final newline", strings.TrimSuffix(block, "\n"), m + "line 8: input ends before the empty line that ends the block"},
		{"lone CR is not an empty line", block + "\r", m + "line 9: input ends before the empty line that ends the block"},
		{"oversize line", block + "x=" + strings.Repeat("a", MaxSize) + "\n\n", m + "line 9: block longer than 65536 bytes without an empty line"},
		{"oversize without newline", "header=rudder-signature-v1" + strings.Repeat("a", 2*MaxSize), m + "line 1: block longer than 65536 bytes without an empty line"},
		{"oversize many lines", block + many.String() + "\n", m + fmt.Sprintf("line %d: block longer than 65536 bytes without an empty line", manyLine)},
		{"MaxSize plus one", block + "pad=" + strings.Repeat("a", MaxSize-len(block)-len("pad=\n\n")+1) + "\n\n", m + "line 10: block longer than 65536 bytes without an empty line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _, err := readAll(t, []byte(tt.body))
			if err == nil {
				t.Fatalf("Read succeeded: %+v", b)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error does not wrap ErrMalformed: %v", err)
			}
			// A final "*" marks a message that ends with the words of an
			// encoding/asn1 error, which may change between Go versions.
			if prefix, ok := strings.CutSuffix(tt.want, "*"); ok && !strings.HasPrefix(err.Error(), prefix) ||
				!ok && err.Error() != tt.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tt.want)
			}
		})
	}
}

func pkixOf(t testing.TB) string {
	der, err := x509.MarshalPKIXPublicKey(&loadKey(t, "key.pem").PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// TestReadConsumesNoMore checks that Read stops right after the empty line
// and never reads more than MaxSize bytes of a block.
func TestReadConsumesNoMore(t *testing.T) {
	block := readFile(t, "file.sha256.sign")
	r := bufio.NewReader(io.MultiReader(bytes.NewReader(block), strings.NewReader("\n\nrest")))
	if _, err := Read(r); err != nil {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "\nrest" {
		t.Errorf("rest = %q", rest)
	}

	// An endless header: Read gives up after MaxSize bytes (plus what the
	// bufio.Reader buffers), not at the end of the input.
	cr := &countingReader{r: endless{}}
	_, err := Read(bufio.NewReader(cr))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("Read(endless) = %v", err)
	}
	if cr.n > MaxSize+2*4096 {
		t.Errorf("read %d bytes of an endless block", cr.n)
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestReadError checks that an error from the reader (say, a body over its
// size limit) is passed on and not reported as a malformed block.
func TestReadError(t *testing.T) {
	boom := errors.New("request body too large")
	r := bufio.NewReader(io.MultiReader(strings.NewReader("header=rudder-signature-v1\nalgo"), iotest.ErrReader(boom)))
	_, err := Read(r)
	if !errors.Is(err, boom) || errors.Is(err, ErrMalformed) {
		t.Errorf("Read = %v, want the reader's error", err)
	}
}

func TestVerifyZeroBlock(t *testing.T) {
	if err := new(Block).Verify(make([]byte, 32)); err == nil || errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify on a zero Block = %v", err)
	}
}

func TestRelayed(t *testing.T) {
	const h, exp = "abc123", int64(1767225600)
	tests := []struct{ name, raw, want string }{
		{"Rudder's layout",
			"header=rudder-signature-v1\nalgorithm=sha256\ndigest=00\nhash_value=ffff\nshort_pubkey=K\nhostname=n\n",
			"header=rudder-signature-v1\nalgorithm=sha256\ndigest=00\nhash_value=abc123\nshort_pubkey=K\nhostname=n\nexpires=1767225600\n"},
		{"right hash_value kept in place",
			"header=rudder-signature-v1\nhash_value=abc123\ndigest=00\n",
			"header=rudder-signature-v1\nhash_value=abc123\ndigest=00\nexpires=1767225600\n"},
		{"missing hash_value added after digest",
			"header=rudder-signature-v1\nalgorithm=sha1\ndigest=00\nshort_pubkey=K\n",
			"header=rudder-signature-v1\nalgorithm=sha1\ndigest=00\nhash_value=abc123\nshort_pubkey=K\nexpires=1767225600\n"},
		{"missing hash_value and digest: added at the end",
			"header=rudder-signature-v1\nx=y\n",
			"header=rudder-signature-v1\nx=y\nhash_value=abc123\nexpires=1767225600\n"},
		{"duplicate hash_value: the first one says the relay's hash",
			"header=rudder-signature-v1\nhash_value=1\ndigest=00\nhash_value=2\n",
			"header=rudder-signature-v1\nhash_value=abc123\ndigest=00\nexpires=1767225600\n"},
		{"CRLF endings kept, added lines in CRLF",
			"header=rudder-signature-v1\r\ndigest=00\r\nhash_value=1\r\nexpires=5\r\nttl=1d\r\n",
			"header=rudder-signature-v1\r\ndigest=00\r\nhash_value=abc123\r\nttl=1d\r\nexpires=1767225600\r\n"},
		{"mixed endings follow the first line",
			"header=rudder-signature-v1\ndigest=00\r\nx=1\r\n",
			"header=rudder-signature-v1\ndigest=00\r\nhash_value=abc123\nx=1\r\nexpires=1767225600\n"},
		{"spaces around = and the key",
			"header=rudder-signature-v1\n hash_value \t= wrong \ndigest=00\n\texpires = 9999999999\n",
			"header=rudder-signature-v1\nhash_value=abc123\ndigest=00\nexpires=1767225600\n"},
		{"expires given several times",
			"header=rudder-signature-v1\nexpires=1\ndigest=00\nexpires=2\nkeyid=k\nexpires=\n",
			"header=rudder-signature-v1\ndigest=00\nhash_value=abc123\nkeyid=k\nexpires=1767225600\n"},
		{"keys that only look alike are kept",
			"header=rudder-signature-v1\nhash_values=1\nx-expires=2\nexpires_at=3\ncomment=expires=4\n",
			"header=rudder-signature-v1\nhash_values=1\nx-expires=2\nexpires_at=3\ncomment=expires=4\nhash_value=abc123\nexpires=1767225600\n"},
		{"last line without an ending", "header=rudder-signature-v1\ndigest=00",
			"header=rudder-signature-v1\ndigest=00\nhash_value=abc123\nexpires=1767225600\n"},
		{"empty", "", "hash_value=abc123\nexpires=1767225600\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Relayed([]byte(tt.raw), h, exp)
			if err != nil || string(got) != tt.want {
				t.Errorf("Relayed(%q)\n got %q, %v\nwant %q", tt.raw, got, err, tt.want)
			}
		})
	}

	// The openssl-made blocks, with a client's expires and a wrong hash_value: the result
	// parses, still verifies, and says the relay's values.
	file := readFile(t, "file")
	for _, fx := range fixtures {
		sign := bytes.Replace(readFile(t, fx.sign), []byte("\nhash_value="), []byte("\nexpires=1\nhash_value=00"), 1)
		b, _, err := readAll(t, putBody(sign, file))
		if err != nil {
			t.Fatalf("%s: %v", fx.sign, err)
		}
		sum := sumOf(b, file)
		relayed, err := Relayed(b.Raw, hex.EncodeToString(sum), exp)
		if err != nil {
			t.Fatalf("%s: Relayed: %v", fx.sign, err)
		}
		b2, rest, err := readAll(t, putBody(relayed, file))
		if err != nil || !bytes.Equal(rest, file) {
			t.Fatalf("%s: reading the relayed block: %v", fx.sign, err)
		}
		if b2.HashValue != hex.EncodeToString(sum) || fieldValue(b2, "expires") != "1767225600" || b2.Verify(sum) != nil {
			t.Errorf("%s: relayed block %q", fx.sign, relayed)
		}
	}

	// The result must fit MaxSize with its empty line, or be refused.
	lines := fixtureLines(t)
	block := join(lines, "")
	pad := "pad=" + strings.Repeat("a", MaxSize-len(block)-len("pad=\n\n")) + "\n"
	if _, _, err := readAll(t, []byte(block+pad+"\n")); err != nil {
		t.Fatalf("a block of exactly MaxSize: %v", err)
	}
	if _, err := Relayed([]byte(block+pad), strings.Repeat("0", 64), exp); !errors.Is(err, ErrMalformed) {
		t.Errorf("Relayed of a block of MaxSize: %v, want an error wrapping ErrMalformed", err)
	}
	short := block + pad[:len(pad)-len("expires=1767225600\n")-1] + "\n"
	if got, err := Relayed([]byte(short), strings.Repeat("0", 64), exp); err != nil || len(got)+1 != MaxSize {
		t.Errorf("Relayed of a block that just fits: %d bytes, %v", len(got), err)
	}
}

// fieldValue returns the value of the key's line in b ("" when absent).
func fieldValue(b *Block, key string) string {
	for _, f := range b.Fields {
		if f.Key == key {
			return f.Value
		}
	}
	return ""
}

func FuzzRead(f *testing.F) {
	file := readFile(f, "file")
	for _, fx := range fixtures {
		sign := readFile(f, fx.sign)
		f.Add(putBody(sign, file))
		f.Add(bytes.ReplaceAll(putBody(sign, nil), []byte("\n"), []byte("\r\n")))
	}
	lines := fixtureLines(f)
	for _, s := range []string{
		"", "\n", "header=rudder-signature-v1\n\n", "header=rudder-signature-v1\nalgorithm=sha1\n\n",
		join(edit(lines, 2, lines[2], lines[2]), "") + "\n", join(edit(lines, 1, " algorithm = sha512 "), "") + "\nx",
		join(edit(lines, 4, "short_pubkey="+pubkeyOf(1024)), "\r\n") + "\r\n",
		strings.Join(lines, "\n") + "\nx=\xff\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(body), 16)
		b, err := Read(r)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		rest, _ := io.ReadAll(r)
		// Raw is a prefix of the input, followed by one empty line, then the rest.
		if !bytes.HasPrefix(body, b.Raw) || len(b.Raw) >= MaxSize {
			t.Fatalf("Raw %q is not a prefix of the input", b.Raw)
		}
		sep := body[len(b.Raw) : len(body)-len(rest)]
		if string(sep) != "\n" && string(sep) != "\r\n" {
			t.Fatalf("block and content separated by %q", sep)
		}
		if b.PublicKey == nil || !b.Hash.Available() || len(b.Digest) == 0 || b.Fields[0].Key != "header" {
			t.Fatalf("incomplete block %+v", b)
		}
		// Raw followed by an empty line parses to the same block.
		var buf bytes.Buffer
		if _, err := b.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		b2, err := Read(bufio.NewReader(&buf))
		if err != nil || !bytes.Equal(b2.Raw, b.Raw) || !equalFields(b2.Fields, b.Fields) {
			t.Fatalf("re-reading Raw: %v", err)
		}
		sum := sumOf(b, rest)
		_ = b.Verify(sum)

		// What a relay stores and forwards: the same lines in the same order, but for the
		// relay's hash_value and expires; a next hop reads it, or Relayed says it is too long.
		relayed, err := Relayed(b.Raw, hex.EncodeToString(sum), 1767225600)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || len(b.Raw)+len("hash_value=\r\nexpires=1767225600\r\n\r\n")+2*len(sum) <= MaxSize {
				t.Fatalf("Relayed of a %d-byte block: %v", len(b.Raw), err)
			}
			return
		}
		b3, err := Read(bufio.NewReader(bytes.NewReader(append(relayed, '\n'))))
		if err != nil {
			t.Fatalf("reading the relayed block %q: %v", relayed, err)
		}
		var want []Field
		for _, f := range b.Fields {
			switch f.Key {
			case "expires":
				continue
			case "hash_value":
				f.Value = hex.EncodeToString(sum)
			}
			want = append(want, f)
		}
		if b.HashValue == "" { // added after digest
			i := slices.IndexFunc(want, func(f Field) bool { return f.Key == "digest" })
			want = slices.Insert(want, i+1, Field{"hash_value", hex.EncodeToString(sum)})
		}
		want = append(want, Field{"expires", "1767225600"})
		if !equalFields(b3.Fields, want) || b3.HashValue != hex.EncodeToString(sum) {
			t.Fatalf("relayed fields %q, want %q", b3.Fields, want)
		}
	})
}

// pemDecode returns the bytes of the first PEM block of data.
func pemDecode(data []byte) ([]byte, []byte) {
	blk, rest := pem.Decode(data)
	if blk == nil {
		return nil, rest
	}
	return blk.Bytes, rest
}

// BenchmarkRead measures reading a block as the relay does for an upload that has no slot yet
// (a 4 KiB read buffer): what it allocates is what a waiting upload keeps, at most (B/op).
func BenchmarkRead(b *testing.B) {
	lines := fixtureLines(b)
	block := join(lines, "")
	padded := block + "pad=" + strings.Repeat("a", MaxSize-len(block)-len("pad=\n\n")) + "\n"
	for _, bc := range []struct{ name, block string }{{"rudder", block}, {"padded-to-MaxSize", padded}} {
		body := []byte(bc.block + "\n" + "file bytes")
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.block)))
			for b.Loop() {
				if _, err := Read(bufio.NewReaderSize(bytes.NewReader(body), 4096)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadKept measures the heap a parsed block keeps while it is held (an upload waiting
// for a slot holds one): "kept_B/block" with every field, "kept_no_fields_B/block" once Fields
// is dropped, as the relay does while the upload waits.
func BenchmarkReadKept(b *testing.B) {
	lines := fixtureLines(b)
	block := join(lines, "")
	padded := block + "pad=" + strings.Repeat("a", MaxSize-len(block)-len("pad=\n\n")) + "\n"
	for _, bc := range []struct{ name, block string }{{"rudder", block}, {"padded-to-MaxSize", padded}} {
		body := []byte(bc.block + "\n" + "file bytes")
		b.Run(bc.name, func(b *testing.B) {
			const n = 200
			kept := func(dropFields bool) float64 {
				keep := make([]*Block, n)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for i := range keep {
					blk, err := Read(bufio.NewReaderSize(bytes.NewReader(body), 4096))
					if err != nil {
						b.Fatal(err)
					}
					if dropFields {
						blk.Fields = nil
					}
					keep[i] = blk
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				runtime.KeepAlive(keep)
				return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
			}
			var all, noFields float64
			for b.Loop() {
				all, noFields = kept(false), kept(true)
			}
			b.ReportMetric(all, "kept_B/block")
			b.ReportMetric(noFields, "kept_no_fields_B/block")
		})
	}
}

// BenchmarkRelayed measures the rewriting of a block before it is stored.
func BenchmarkRelayed(b *testing.B) {
	raw := []byte(join(fixtureLines(b), ""))
	hash := strings.Repeat("ab", 32)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Relayed(raw, hash, 1767225600); err != nil {
			b.Fatal(err)
		}
	}
}
