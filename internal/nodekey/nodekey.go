// Package nodekey reads a node's RSA private key as Rudder agents keep it
// (/var/rudder/cfengine-community/ppkeys/localhost.priv) and derives from it
// what a shared file's signature block says about the key: keyid and keydate,
// as Rudder's rudder-sign writes them. keel-agent signs with it; keel-relay's
// TLS listener presents it (Decrypted).
//
// Accepted: PEM "RSA PRIVATE KEY" (PKCS#1), plain or with the legacy OpenSSL
// encryption headers (Proc-Type: 4,ENCRYPTED and DEK-Info, as CFEngine writes
// its keys, with the passphrase "Cfengine passphrase"), and "PRIVATE KEY"
// (unencrypted PKCS#8). Other text around the PEM block is ignored.
package nodekey

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// DefaultPassphrase is the passphrase CFEngine encrypts its keys with.
const DefaultPassphrase = "Cfengine passphrase"

// Bounds on the key size, in bits (those of the relay's signature check).
const (
	MinBits = 1024
	MaxBits = 8192
)

// maxFileSize bounds what Load reads: an RSA key file is a few KiB.
const maxFileSize = 1 << 20

// Key is a node's private key with what the signature block says about it.
type Key struct {
	Private *rsa.PrivateKey
	// ModTime is the key file's modification time (zero for a key parsed
	// from bytes).
	ModTime time.Time
}

// Load reads and parses the key file at path; passphrase decrypts a legacy
// encrypted PEM. Errors name the file.
func Load(path, passphrase string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxFileSize {
		return nil, fmt.Errorf("node key %s: not a regular file of at most %d bytes", path, maxFileSize)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && fi.Size() > 0 {
		return nil, fmt.Errorf("node key %s: %w", path, err)
	}
	k, err := Parse(b, passphrase)
	if err != nil {
		return nil, fmt.Errorf("node key %s: %w", path, err)
	}
	return &Key{Private: k, ModTime: fi.ModTime()}, nil
}

// Parse returns the RSA private key in the first private-key PEM block of b.
func Parse(b []byte, passphrase string) (*rsa.PrivateKey, error) {
	rest := b
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM \"RSA PRIVATE KEY\" or \"PRIVATE KEY\" block")
		}
		switch block.Type {
		case "RSA PRIVATE KEY":
			return parsePKCS1(block, passphrase)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("PKCS#8 private key: %w", err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("PKCS#8 private key is a %T, not an RSA key", k)
			}
			return checked(rk)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted PKCS#8 keys are not supported: convert with `openssl pkcs8 -topk8 -nocrypt` or `openssl rsa -traditional`")
		}
	}
}

func parsePKCS1(block *pem.Block, passphrase string) (*rsa.PrivateKey, error) {
	der, err := decryptBlock(block, passphrase)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS1PrivateKey(der)
	if err != nil {
		if len(der) != len(block.Bytes) || block.Headers["DEK-Info"] != "" {
			return nil, fmt.Errorf("PKCS#1 private key (wrong key_passphrase?): %w", err)
		}
		return nil, fmt.Errorf("PKCS#1 private key: %w", err)
	}
	return checked(k)
}

// decryptBlock returns the DER of a PKCS#1 block: its bytes, decrypted with passphrase when
// the block carries the legacy OpenSSL encryption headers (as CFEngine writes its keys).
func decryptBlock(block *pem.Block, passphrase string) ([]byte, error) {
	if block.Headers["Proc-Type"] == "" && block.Headers["DEK-Info"] == "" {
		return block.Bytes, nil
	}
	if !strings.HasPrefix(block.Headers["Proc-Type"], "4,ENCRYPTED") || block.Headers["DEK-Info"] == "" {
		return nil, fmt.Errorf("PEM headers Proc-Type %q / DEK-Info %q: not a legacy encrypted key", block.Headers["Proc-Type"], block.Headers["DEK-Info"])
	}
	// The legacy OpenSSL encryption is weak by design and deprecated for new
	// uses; reading CFEngine's keys is exactly the compatibility it is kept for.
	//lint:ignore SA1019 CFEngine keys use this format
	plain, err := x509.DecryptPEMBlock(block, []byte(passphrase))
	if err != nil {
		return nil, fmt.Errorf("decrypting the key (DEK-Info %s) with passphrase: %w", block.Headers["DEK-Info"], err)
	}
	return plain, nil
}

// Decrypted returns keyPEM with its first private-key block decrypted with passphrase when it
// is a legacy encrypted "RSA PRIVATE KEY" (as CFEngine writes its keys), so that crypto/tls
// can load it; any other key comes back as it is.
func Decrypted(keyPEM []byte, passphrase string) ([]byte, error) {
	rest := keyPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return keyPEM, nil
		}
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			continue
		}
		if block.Type != "RSA PRIVATE KEY" || block.Headers["Proc-Type"] == "" {
			return keyPEM, nil
		}
		der, err := decryptBlock(block, passphrase)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}), nil
	}
}

func checked(k *rsa.PrivateKey) (*rsa.PrivateKey, error) {
	if bits := k.N.BitLen(); bits < MinBits || bits > MaxBits {
		return nil, fmt.Errorf("%d-bit RSA key, want %d to %d bits", bits, MinBits, MaxBits)
	}
	return k, nil
}

// KeyID returns the key identifier rudder-sign writes as "keyid": the last
// four bytes of the modulus, in upper-case hex (what
// `openssl rsa -noout -modulus` prints, last 8 characters).
func KeyID(pub *rsa.PublicKey) string {
	n := fmt.Sprintf("%X", pub.N)
	if len(n) > 8 {
		n = n[len(n)-8:]
	}
	return n
}

// KeyDate returns t as rudder-sign writes "keydate": the key file's
// modification time in the form of `stat -c %y`
// ("2006-01-02 15:04:05.000000000 -0700"), in t's location.
func KeyDate(t time.Time) string {
	return t.Format("2006-01-02 15:04:05.000000000 -0700")
}
