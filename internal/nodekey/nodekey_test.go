package nodekey

import (
	"crypto/rsa"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// openssl runs openssl with args and fails the test on error.
func openssl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// keyFiles makes one RSA key with openssl and writes it in the three accepted forms.
func keyFiles(t *testing.T) (dir string, forms map[string]string) {
	t.Helper()
	dir = t.TempDir()
	pkcs8 := filepath.Join(dir, "pkcs8.pem")
	openssl(t, "genrsa", "-out", pkcs8, "2048")
	pkcs1 := filepath.Join(dir, "pkcs1.pem")
	openssl(t, "rsa", "-in", pkcs8, "-traditional", "-out", pkcs1)
	enc := filepath.Join(dir, "localhost.priv")
	openssl(t, "rsa", "-in", pkcs8, "-traditional", "-des3", "-passout", "pass:"+DefaultPassphrase, "-out", enc)
	return dir, map[string]string{"PKCS#8": pkcs8, "PKCS#1": pkcs1, "legacy encrypted": enc}
}

func TestLoadForms(t *testing.T) {
	dir, forms := keyFiles(t)
	modulus := strings.TrimSpace(openssl(t, "rsa", "-in", forms["PKCS#8"], "-noout", "-modulus"))
	wantID := modulus[len(modulus)-8:]
	if head, _ := os.ReadFile(forms["legacy encrypted"]); !strings.Contains(string(head), "Proc-Type: 4,ENCRYPTED") {
		t.Fatalf("openssl did not write a legacy encrypted key:\n%s", head)
	}
	var first *rsa.PrivateKey
	for name, path := range forms {
		k, err := Load(path, DefaultPassphrase)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if first == nil {
			first = k.Private
		} else if !first.Equal(k.Private) {
			t.Errorf("%s: a different key", name)
		}
		if got := KeyID(&k.Private.PublicKey); got != wantID {
			t.Errorf("%s: KeyID %q, want %q (from %s)", name, got, wantID, modulus)
		}
		if k.ModTime.IsZero() {
			t.Errorf("%s: no modification time", name)
		}
	}
	if _, err := Load(forms["legacy encrypted"], "wrong passphrase"); err == nil || !strings.Contains(err.Error(), "localhost.priv") {
		t.Errorf("wrong passphrase: %v, want an error naming the file", err)
	}
	if _, err := Load(filepath.Join(dir, "missing"), ""); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(dir, ""); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

func TestParseBad(t *testing.T) {
	// Go refuses to make a 512-bit key; openssl still does.
	smallFile := filepath.Join(t.TempDir(), "small.pem")
	openssl(t, "genrsa", "-traditional", "-out", smallFile, "512")
	smallPEM, err := os.ReadFile(smallFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "no PEM"},
		{"text", "hello\n", "no PEM"},
		{"public key only", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "no PEM"},
		{"garbage PKCS#1", "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", "PKCS#1 private key"},
		{"garbage PKCS#8", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "PKCS#8 private key"},
		{"encrypted PKCS#8", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", "encrypted PKCS#8 keys are not supported"},
		{"bad Proc-Type", "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,OTHER\n\nAAAA\n-----END RSA PRIVATE KEY-----\n", "not a legacy encrypted key"},
		{"bad DEK-Info", "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: ROT13,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n", "decrypting the key"},
		{"too small", string(smallPEM), "512-bit RSA key, want 1024 to 8192 bits"},
	} {
		_, err := Parse([]byte(tc.in), DefaultPassphrase)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestKeyDate(t *testing.T) {
	at := time.Date(2024, 3, 5, 7, 8, 9, 123456789, time.FixedZone("", 3600))
	if got, want := KeyDate(at), "2024-03-05 07:08:09.123456789 +0100"; got != want {
		t.Errorf("KeyDate = %q, want %q (stat -c %%y)", got, want)
	}
}

// FuzzParse: Parse never panics, and a key it returns is within the size bounds.
func FuzzParse(f *testing.F) {
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), "")
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: DES-EDE3-CBC,0011223344556677\n\nAAAAAAAAAAAAAAAAAAAAAA==\n-----END RSA PRIVATE KEY-----\n"), DefaultPassphrase)
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n"), "")
	f.Add([]byte("x\n-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"), "")
	f.Fuzz(func(t *testing.T, b []byte, pass string) {
		k, err := Parse(b, pass)
		if err != nil {
			return
		}
		if bits := k.N.BitLen(); bits < MinBits || bits > MaxBits {
			t.Fatalf("accepted a %d-bit key", bits)
		}
	})
}
