// Package sigblock reads, verifies and writes the "rudder-signature-v1" block
// that precedes a shared file's bytes in a PUT to the relay API:
//
//	header=rudder-signature-v1
//	algorithm=sha256
//	digest=<hex RSA PKCS#1 v1.5 signature of the file bytes>
//	hash_value=<hex hash of the file bytes>
//	short_pubkey=<base64 PKCS#1 RSAPublicKey DER>
//	hostname=<source hostname>
//	keydate=<free text>
//	keyid=<free text>
//	ttl=<ttl, optional>
//	<empty line>
//	<file bytes...>
//
// The block is what Rudder's agents write as a ".sign" file; the signature is
// what "openssl dgst -<algorithm> -sign key.pem file" produces.
package sigblock

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/rsa"
	_ "crypto/sha1" // registers crypto.SHA1 for Block.NewHash
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxSize bounds the bytes Read consumes for a block, its closing empty line
// included, so that a client cannot make the relay buffer a huge "header".
const MaxSize = 64 << 10

// Bounds on the size of the RSA key in short_pubkey, in bits.
const (
	minKeyBits = 1024
	maxKeyBits = 8192 // as crypto/tls; Rudder keys are 2048 or 4096 bits
)

const headerLine = "header=rudder-signature-v1"

var (
	// ErrMalformed is wrapped by every error Read returns for a block that is
	// not well formed (HTTP 400), as opposed to errors from the reader itself.
	ErrMalformed = errors.New("malformed signature block")
	// ErrBadSignature is wrapped by the error Verify returns when the
	// signature does not verify (HTTP 403).
	ErrBadSignature = errors.New("bad signature")
)

// Field is one "key=value" line of a block, key and value trimmed of spaces.
type Field struct{ Key, Value string }

// Block is a parsed signature block.
type Block struct {
	// Algorithm is the "algorithm" line: sha1, sha256 or sha512.
	Algorithm string
	// Hash is the hash function Algorithm names.
	Hash crypto.Hash
	// Digest is the RSA PKCS#1 v1.5 signature, decoded from hex.
	Digest []byte
	// HashValue is the "hash_value" line as given; it is not checked.
	HashValue string
	// ShortPubkey is the "short_pubkey" line as given.
	ShortPubkey string
	// PublicKey is the key decoded from ShortPubkey.
	PublicKey *rsa.PublicKey
	// Hostname, KeyDate, KeyID and TTL are the "hostname", "keydate",
	// "keyid" and "ttl" lines, empty when absent. TTL is not parsed here.
	Hostname, KeyDate, KeyID, TTL string
	// Fields holds every line of the block in order, the header line first
	// and unknown keys (such as "expires") included.
	Fields []Field
	// Raw is the block exactly as read, from the header line through the
	// last line before the empty line, each line with its original ending.
	Raw []byte
}

// Read reads a signature block from r, up to and including the empty line
// ("\n" or "\r\n") that ends it, and leaves r at the first byte of the file
// content. It consumes at most MaxSize bytes. Errors for a malformed block
// wrap ErrMalformed; errors from r are returned wrapped as they are.
func Read(r *bufio.Reader) (*Block, error) {
	b := &Block{}
	seen := make(map[string]bool)
	for n := 1; ; n++ {
		line, err := readLine(r, n, MaxSize-len(b.Raw))
		if err != nil {
			return nil, err
		}
		text := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		if text == "" {
			if n == 1 {
				return nil, fmt.Errorf("%w: line 1: empty, want %q", ErrMalformed, headerLine)
			}
			break
		}
		if err := checkText(text); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrMalformed, n, err)
		}
		if n == 1 && text != headerLine {
			return nil, fmt.Errorf("%w: line 1: %q, want %q", ErrMalformed, clip(text), headerLine)
		}
		key, value, ok := strings.Cut(text, "=")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: %q is not key=value", ErrMalformed, n, clip(text))
		}
		key, value = strings.Trim(key, " \t"), strings.Trim(value, " \t")
		if key == "" {
			return nil, fmt.Errorf("%w: line %d: %q has an empty key", ErrMalformed, n, clip(text))
		}
		if seen[key] {
			return nil, fmt.Errorf("%w: line %d: key %q given twice", ErrMalformed, n, clip(key))
		}
		seen[key] = true
		b.Fields = append(b.Fields, Field{key, value})
		b.Raw = append(b.Raw, line...)
	}
	if err := b.decode(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	// Raw grew by appending; a block may be kept a while (an upload waiting for a slot), so
	// it keeps no more memory than its length.
	b.Raw = bytes.Clone(b.Raw)
	return b, nil
}

// readLine returns line n of the block, from r, with its "\n", failing if that
// is more than limit bytes or if r ends first.
func readLine(r *bufio.Reader, n, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > limit {
			return nil, fmt.Errorf("%w: line %d: block longer than %d bytes without an empty line", ErrMalformed, n, MaxSize)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return nil, fmt.Errorf("%w: line %d: input ends before the empty line that ends the block", ErrMalformed, n)
		default:
			return nil, fmt.Errorf("reading signature block line %d: %w", n, err)
		}
	}
}

// checkText refuses lines that are not valid UTF-8 or hold control characters
// other than tab.
func checkText(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%q is not valid UTF-8", clip(s))
	}
	for _, c := range s {
		if c < ' ' && c != '\t' || c == 0x7f {
			return fmt.Errorf("%q holds a control character", clip(s))
		}
	}
	return nil
}

// clip shortens s for an error message.
func clip(s string) string {
	const limit = 80
	if len(s) <= limit {
		return s
	}
	for i := limit; i > limit-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "..."
		}
	}
	return s[:limit] + "..."
}

// decode fills b's typed fields from b.Fields.
func (b *Block) decode() error {
	var haveAlgo, haveDigest, haveKey bool
	for _, f := range b.Fields {
		var err error
		switch f.Key {
		case "algorithm":
			haveAlgo = true
			b.Algorithm = f.Value
			b.Hash, err = hashOf(f.Value)
		case "digest":
			haveDigest = true
			b.Digest, err = hex.DecodeString(f.Value)
			if err == nil && len(b.Digest) == 0 {
				err = errors.New("empty")
			}
		case "hash_value":
			b.HashValue = f.Value
		case "short_pubkey":
			haveKey = true
			b.ShortPubkey = f.Value
			b.PublicKey, err = parseKey(f.Value)
		case "hostname":
			b.Hostname = f.Value
		case "keydate":
			b.KeyDate = f.Value
		case "keyid":
			b.KeyID = f.Value
		case "ttl":
			b.TTL = f.Value
		}
		if err != nil {
			return fmt.Errorf("%s %q: %w", f.Key, clip(f.Value), err)
		}
	}
	switch {
	case !haveAlgo:
		return errors.New(`no "algorithm" line`)
	case !haveDigest:
		return errors.New(`no "digest" line`)
	case !haveKey:
		return errors.New(`no "short_pubkey" line`)
	}
	return nil
}

// hashOf returns the hash function an "algorithm" value names.
func hashOf(algorithm string) (crypto.Hash, error) {
	switch algorithm {
	case "sha1":
		return crypto.SHA1, nil
	case "sha256":
		return crypto.SHA256, nil
	case "sha512":
		return crypto.SHA512, nil
	}
	return 0, errors.New("unknown algorithm, want sha1, sha256 or sha512")
}

// parseKey decodes a short_pubkey value: base64 (padded or not) of a PKCS#1
// RSAPublicKey DER.
func parseKey(s string) (*rsa.PublicKey, error) {
	enc := base64.StdEncoding
	if !strings.HasSuffix(s, "=") {
		enc = base64.RawStdEncoding
	}
	der, err := enc.DecodeString(s)
	if err != nil {
		return nil, err
	}
	pub, err := x509.ParsePKCS1PublicKey(der)
	if err != nil {
		return nil, err
	}
	if bits := pub.N.BitLen(); bits < minKeyBits || bits > maxKeyBits {
		return nil, fmt.Errorf("%d-bit RSA key, want %d to %d bits", bits, minKeyBits, maxKeyBits)
	}
	return pub, nil
}

// NewHash returns a new hasher for the block's algorithm, to hash the file
// bytes for Verify.
func (b *Block) NewHash() hash.Hash { return b.Hash.New() }

// Verify checks the block's signature (Digest, by PublicKey) against sum, the
// hash of the file bytes computed with NewHash. A signature that does not
// verify gives an error wrapping ErrBadSignature.
func (b *Block) Verify(sum []byte) error {
	if b.PublicKey == nil || !b.Hash.Available() {
		return errors.New("signature block has no key or algorithm")
	}
	if len(sum) != b.Hash.Size() {
		return fmt.Errorf("file hash is %d bytes, want %d for %s", len(sum), b.Hash.Size(), b.Algorithm)
	}
	if err := rsa.VerifyPKCS1v15(b.PublicKey, b.Hash, sum, b.Digest); err != nil {
		return fmt.Errorf("%w: the digest does not verify over the file's %s hash with short_pubkey: %w", ErrBadSignature, b.Algorithm, err)
	}
	return nil
}

// Sign hashes file with algorithm (sha1, sha256 or sha512), signs the hash
// with key, and returns the block Read would return for it, Raw included
// (lines header, algorithm, digest, hash_value, short_pubkey, hostname,
// keydate, keyid, then ttl if not empty, each ending in "\n").
func Sign(key *rsa.PrivateKey, algorithm string, file io.Reader, hostname, keydate, keyid, ttl string) (*Block, error) {
	h, err := hashOf(algorithm)
	if err != nil {
		return nil, fmt.Errorf("signing with algorithm %q: %w", algorithm, err)
	}
	if key == nil || key.N == nil {
		return nil, errors.New("signing: no key")
	}
	if bits := key.N.BitLen(); bits < minKeyBits || bits > maxKeyBits {
		return nil, fmt.Errorf("signing: %d-bit RSA key, want %d to %d bits", bits, minKeyBits, maxKeyBits)
	}
	for _, f := range []Field{{"hostname", hostname}, {"keydate", keydate}, {"keyid", keyid}, {"ttl", ttl}} {
		if err := checkText(f.Value); err != nil {
			return nil, fmt.Errorf("signing: %s: %w", f.Key, err)
		}
		if strings.Trim(f.Value, " \t") != f.Value {
			return nil, fmt.Errorf("signing: %s %q: leading or trailing space", f.Key, f.Value)
		}
	}
	hasher := h.New()
	if _, err := io.Copy(hasher, file); err != nil {
		return nil, fmt.Errorf("signing: reading the file: %w", err)
	}
	sum := hasher.Sum(nil)
	sig, err := rsa.SignPKCS1v15(nil, key, h, sum)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	b := &Block{
		Algorithm:   algorithm,
		Hash:        h,
		Digest:      sig,
		HashValue:   hex.EncodeToString(sum),
		ShortPubkey: base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(&key.PublicKey)),
		PublicKey:   &rsa.PublicKey{N: key.N, E: key.E},
		Hostname:    hostname,
		KeyDate:     keydate,
		KeyID:       keyid,
		TTL:         ttl,
	}
	b.Fields = []Field{
		{"header", strings.TrimPrefix(headerLine, "header=")},
		{"algorithm", algorithm},
		{"digest", hex.EncodeToString(sig)},
		{"hash_value", b.HashValue},
		{"short_pubkey", b.ShortPubkey},
		{"hostname", hostname},
		{"keydate", keydate},
		{"keyid", keyid},
	}
	if ttl != "" {
		b.Fields = append(b.Fields, Field{"ttl", ttl})
	}
	var raw bytes.Buffer
	for _, f := range b.Fields {
		raw.WriteString(f.Key + "=" + f.Value + "\n")
	}
	b.Raw = raw.Bytes()
	return b, nil
}

// Relayed returns raw, a block as Read gives it in Block.Raw (each line with its ending, no
// empty line), as a relay stores and forwards it: the client's lines in their order and with
// their endings, except that the first "hash_value" line says hashValue (the hash the relay
// computed over the file bytes; a line is added after "digest" when there is none, further
// "hash_value" lines are dropped), every "expires" line is dropped (the relay decides when a
// file expires, not the client), and a last line "expires=<expires>" (unix seconds) is added.
// Keys are matched as Read matches them (spaces and tabs around them ignored). Added lines end
// as the block's first line does. The result must still be a block a next hop accepts: an
// error wrapping ErrMalformed says it would be longer than MaxSize with its empty line.
func Relayed(raw []byte, hashValue string, expires int64) ([]byte, error) {
	eol := "\n"
	if first, _, _ := bytes.Cut(raw, []byte("\n")); bytes.HasSuffix(first, []byte("\r")) {
		eol = "\r\n"
	}
	hashLine := "hash_value=" + hashValue + eol
	out := make([]byte, 0, len(raw)+len(hashLine)+len("expires=")+20+len(eol))
	hashDone, afterDigest := false, -1
	for rest := raw; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		key, _, _ := strings.Cut(string(bytes.TrimRight(line, "\r\n")), "=")
		switch strings.Trim(key, " \t") {
		case "hash_value":
			if !hashDone {
				out = append(out, hashLine...)
				hashDone = true
			}
			continue
		case "expires":
			continue
		case "digest":
			out = append(out, line...)
			if !bytes.HasSuffix(line, []byte("\n")) { // a last line without its ending
				out = append(out, eol...)
			}
			afterDigest = len(out)
			continue
		}
		out = append(out, line...)
		if !bytes.HasSuffix(line, []byte("\n")) {
			out = append(out, eol...)
		}
	}
	if !hashDone {
		at := len(out)
		if afterDigest >= 0 {
			at = afterDigest
		}
		out = append(out[:at], append([]byte(hashLine), out[at:]...)...)
	}
	out = append(out, "expires="+strconv.FormatInt(expires, 10)+eol...)
	if len(out)+len(eol) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes once the relay's hash_value and expires lines are in, over %d", ErrMalformed, len(out), MaxSize)
	}
	return out, nil
}

// WriteTo writes the block as it must precede the file bytes in a PUT body:
// Raw, then the empty line "\n".
func (b *Block) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b.Raw)
	if err != nil {
		return int64(n), err
	}
	m, err := io.WriteString(w, "\n")
	return int64(n + m), err
}
