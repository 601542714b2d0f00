// Package reqauth proves a node's identity on a relay HTTP request: how a
// node downloads a shared file meant for it with
// "GET /shared-files/<target>/<source>/<file-id>", which only the target node
// may do.
//
// The node signs the request with its RSA key (the key whose hash is its
// key-hash in the node map) and sends four headers:
//
//	Keel-Node: <node id>
//	Keel-Date: <unix seconds>
//	Keel-Pubkey: <base64 of the PKCS#1 RSAPublicKey DER>
//	Keel-Signature: sha256:<hex RSA PKCS#1 v1.5 SHA-256 signature>
//
// The signature covers the string
//
//	"keel-get-v1\n" + method + "\n" + escapedPath + "\n" + date + "\n" + node
//
// where escapedPath is the URL's escaped path without the query, and date and
// node are the header values. The relay checks that the date is within a
// window of its clock, that the public key hashes to the node's key-hash, and
// that the signature verifies; the caller then checks that the node is the
// one the request is about (the target). A captured request can be replayed
// until its date leaves the window; it only ever fetches the same resource.
package reqauth

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keel-relay/keel/internal/wire/ids"
	"github.com/keel-relay/keel/internal/wire/keyhash"
)

// The request headers.
const (
	HeaderNode      = "Keel-Node"
	HeaderDate      = "Keel-Date"
	HeaderPubkey    = "Keel-Pubkey"
	HeaderSignature = "Keel-Signature"
)

// DefaultWindow is how far Keel-Date may be from the verifier's clock, either
// way.
const DefaultWindow = 5 * time.Minute

// Bounds on the size of the RSA key, in bits.
const (
	minKeyBits = 1024
	maxKeyBits = 8192
)

const sigPrefix = "sha256:"

// message returns what the signature covers.
func message(method, escapedPath, date, node string) []byte {
	return []byte("keel-get-v1\n" + method + "\n" + escapedPath + "\n" + date + "\n" + node)
}

// method returns req's method, "GET" when empty as net/http does.
func method(req *http.Request) string {
	if req.Method == "" {
		return http.MethodGet
	}
	return req.Method
}

// Sign adds to req the headers that prove it comes from node nodeID, holder
// of key, at time now. It replaces any such headers already there.
func Sign(req *http.Request, nodeID string, key *rsa.PrivateKey, now time.Time) error {
	if err := ids.ValidNodeID(nodeID); err != nil {
		return fmt.Errorf("signing request: %w", err)
	}
	if key == nil {
		return errors.New("signing request: no key")
	}
	date := strconv.FormatInt(now.Unix(), 10)
	sum := sha256.Sum256(message(method(req), req.URL.EscapedPath(), date, nodeID))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return fmt.Errorf("signing request: %w", err)
	}
	req.Header.Set(HeaderNode, nodeID)
	req.Header.Set(HeaderDate, date)
	req.Header.Set(HeaderPubkey, base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(&key.PublicKey)))
	req.Header.Set(HeaderSignature, sigPrefix+hex.EncodeToString(sig))
	return nil
}

// Verify checks the headers Sign adds and returns the node id they prove.
// pin gives the key pin of a node (false for an unknown node or one without
// a key); the date must be within window of now (DefaultWindow when window
// is not positive). Every error says why the request is refused.
func Verify(req *http.Request, pin func(nodeID string) (keyhash.Pin, bool), now time.Time, window time.Duration) (string, error) {
	if window <= 0 {
		window = DefaultWindow
	}
	h, err := headers(req.Header)
	if err != nil {
		return "", err
	}
	if err := ids.ValidNodeID(h.node); err != nil {
		return "", fmt.Errorf("header %s: %w", HeaderNode, err)
	}
	at, err := parseDate(h.date)
	if err != nil {
		return "", err
	}
	if skew := now.Sub(time.Unix(at, 0)); skew > window || skew < -window {
		return "", fmt.Errorf("header %s %s is %s away from the relay's clock (%s), more than %s",
			HeaderDate, h.date, skew.Abs().Truncate(time.Second), now.UTC().Format(time.RFC3339), window)
	}
	p, ok := pin(h.node)
	if !ok {
		return "", fmt.Errorf("node %q is unknown or has no key hash", h.node)
	}
	pub, err := parseKey(h.pubkey)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("header %s: %w", HeaderPubkey, err)
	}
	if !p.MatchSPKI(der) {
		return "", fmt.Errorf("header %s is not the key of node %q (it does not match the node's key hash)", HeaderPubkey, h.node)
	}
	sig, err := parseSignature(h.sig)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(message(method(req), req.URL.EscapedPath(), h.date, h.node))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return "", fmt.Errorf("header %s: signature of %s %s by node %q does not verify", HeaderSignature, method(req), req.URL.EscapedPath(), h.node)
	}
	return h.node, nil
}

type signed struct{ node, date, pubkey, sig string }

// headers returns the four headers, each of which must be given once.
func headers(hdr http.Header) (signed, error) {
	var s signed
	for _, f := range []struct {
		name string
		v    *string
	}{{HeaderNode, &s.node}, {HeaderDate, &s.date}, {HeaderPubkey, &s.pubkey}, {HeaderSignature, &s.sig}} {
		switch vs := hdr.Values(f.name); len(vs) {
		case 0:
			return s, fmt.Errorf("missing header %s (requests must be signed by the target node)", f.name)
		case 1:
			*f.v = vs[0]
		default:
			return s, fmt.Errorf("header %s given %d times", f.name, len(vs))
		}
	}
	return s, nil
}

// parseDate parses Keel-Date: decimal unix seconds, no sign.
func parseDate(s string) (int64, error) {
	bad := func() error { return fmt.Errorf("header %s %q is not a time in unix seconds", HeaderDate, clip(s)) }
	if s == "" || len(s) > 18 {
		return 0, bad()
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad()
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, bad()
	}
	return n, nil
}

// parseKey parses Keel-Pubkey.
func parseKey(s string) (*rsa.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("header %s is not base64: %w", HeaderPubkey, err)
	}
	pub, err := x509.ParsePKCS1PublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("header %s is not a PKCS#1 RSA public key: %w", HeaderPubkey, err)
	}
	if bits := pub.N.BitLen(); bits < minKeyBits || bits > maxKeyBits {
		return nil, fmt.Errorf("header %s: %d-bit RSA key, want %d to %d bits", HeaderPubkey, bits, minKeyBits, maxKeyBits)
	}
	return pub, nil
}

// parseSignature parses Keel-Signature: "sha256:<hex>".
func parseSignature(s string) ([]byte, error) {
	h, ok := strings.CutPrefix(s, sigPrefix)
	if !ok {
		return nil, fmt.Errorf("header %s %q does not start with %q", HeaderSignature, clip(s), sigPrefix)
	}
	sig, err := hex.DecodeString(h)
	if err != nil || len(sig) == 0 {
		return nil, fmt.Errorf("header %s %q is not %s<hex>", HeaderSignature, clip(s), sigPrefix)
	}
	return sig, nil
}

// clip shortens a header value for an error message.
func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:40] + "..."
}
