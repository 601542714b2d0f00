package sharedfile

import (
	"context"
	"crypto"
	_ "crypto/sha1" // crypto.SHA1 for a relay that stored a sha1 hash
	_ "crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keel-relay/keel/internal/fsutil"
	"github.com/keel-relay/keel/internal/wire/reqauth"
)

// FetchOptions tune Fetch.
type FetchOptions struct {
	// Hash, when set, is the hex SHA-256 the content must have (checked in
	// addition to the relay's own hash of it).
	Hash string
	// Mode is the new file's permission bits (0600 when zero).
	Mode fs.FileMode
}

// FetchResult says what Fetch wrote.
type FetchResult struct {
	Size int64
	Hash string // hex, with Algorithm
	// Algorithm is the hash the relay announced (sha1, sha256 or sha512).
	Algorithm string
}

// Fetch downloads the file source/fileID shared with this node (the target)
// into dest, with a GET signed by the node's key (package reqauth). The body
// goes to a temporary file next to dest, is hashed on the way, and is checked
// against the relay's announced hash (ETag, Keel-Hash-Algorithm) and size
// (Content-Length) — and against o.Hash when set — before the file is synced
// and renamed onto dest (package fsutil). On any failure dest is left as it
// was and the temporary file is removed. A file the relay does not hold gives
// an error wrapping ErrNotFound.
func (c *Client) Fetch(ctx context.Context, source, fileID, dest string, o FetchOptions) (FetchResult, error) {
	target := c.id.NodeID
	if err := checkIDs(target, source, fileID); err != nil {
		return FetchResult{}, err
	}
	o, err := o.normalize()
	if err != nil {
		return FetchResult{}, err
	}
	u := c.FileURL(target, source, fileID)
	ctx, dog, stop := newWatchdog(ctx, c.timeout)
	defer stop()
	resp, err := c.requestFile(ctx, dog, u)
	if err != nil {
		return FetchResult{}, err
	}
	defer resp.Body.Close()
	v, err := newVerifier(resp, o.Hash)
	if err != nil {
		return FetchResult{}, fmt.Errorf("GET %s: %w", u, err)
	}
	var n int64
	err = fsutil.WriteAtomic(dest, o.Mode, func(f *os.File) error {
		var werr error
		n, werr = v.copy(f, kickReader{r: resp.Body, w: dog})
		if werr != nil {
			return requestError(ctx, fmt.Sprintf("GET %s: after %d bytes", u, n), werr)
		}
		if werr := v.check(n); werr != nil {
			return fmt.Errorf("GET %s: %w; %s left unchanged", u, werr, dest)
		}
		return nil
	})
	if err != nil {
		return FetchResult{}, err
	}
	c.log.Debug("file fetched", "url", u, "dest", dest, "bytes", n)
	return FetchResult{Size: n, Hash: v.sum(), Algorithm: v.algo}, nil
}

// normalize checks o and fills in its defaults.
func (o FetchOptions) normalize() (FetchOptions, error) {
	if o.Hash != "" {
		if b, err := hex.DecodeString(o.Hash); err != nil || len(b) != 32 {
			return o, fmt.Errorf("expected hash %q is not a hex SHA-256", o.Hash)
		}
	}
	if o.Mode == 0 {
		o.Mode = 0o600
	}
	return o, nil
}

// requestFile sends the signed GET for u (this node being the target) and
// returns the relay's answer when it serves the file.
func (c *Client) requestFile(ctx context.Context, dog *watchdog, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if err := reqauth.Sign(req, c.id.NodeID, c.id.Key, time.Now()); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, requestError(ctx, "GET "+u, err)
	}
	dog.Kick()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %w (the relay holds no such file for %s, or it expired)", u, ErrNotFound, c.id.NodeID)
	case resp.StatusCode != http.StatusOK:
		defer resp.Body.Close()
		return nil, fmt.Errorf("GET %s: relay answered %s", u, answerText(resp))
	}
	return resp, nil
}

// verifier hashes a fetched body and checks it against what the relay
// announced (hash, size) and what the caller expects (a SHA-256).
type verifier struct {
	algo     string    // the relay's hash algorithm
	want     string    // the relay's hash, hex
	length   int64     // the relay's Content-Length, -1 when unknown
	expected string    // the caller's hex SHA-256, or ""
	hasher   hash.Hash // algo's
	sha256er hash.Hash // SHA-256 for expected: hasher itself when algo is sha256
}

// newVerifier reads what resp announces and refuses at once an announced
// SHA-256 that is not the expected one.
func newVerifier(resp *http.Response, expected string) (*verifier, error) {
	algo, h, want, err := announcedHash(resp.Header)
	if err != nil {
		return nil, err
	}
	if expected != "" && algo == "sha256" && !strings.EqualFold(expected, want) {
		return nil, fmt.Errorf("the relay holds content with sha256 %s, not the expected %s", want, expected)
	}
	v := &verifier{algo: algo, want: want, length: resp.ContentLength, expected: expected, hasher: h.New()}
	v.sha256er = v.hasher
	if algo != "sha256" && expected != "" {
		v.sha256er = crypto.SHA256.New()
	}
	return v, nil
}

// copy writes body to w, hashing it; it reads at most one byte more than the
// announced length.
func (v *verifier) copy(w io.Writer, body io.Reader) (int64, error) {
	if v.length >= 0 {
		body = io.LimitReader(body, v.length+1)
	}
	dst := io.MultiWriter(w, v.hasher)
	if v.sha256er != v.hasher {
		dst = io.MultiWriter(w, v.hasher, v.sha256er)
	}
	return io.Copy(dst, body)
}

// check compares the n bytes copied with the announced size and hash, and
// with the expected SHA-256.
func (v *verifier) check(n int64) error {
	if v.length >= 0 && n != v.length {
		return fmt.Errorf("got %d bytes, the relay announced %d", n, v.length)
	}
	if got := v.sum(); !strings.EqualFold(got, v.want) {
		return fmt.Errorf("the content's %s is %s, the relay announced %s", v.algo, got, v.want)
	}
	if v.expected != "" {
		if s := hex.EncodeToString(v.sha256er.Sum(nil)); !strings.EqualFold(s, v.expected) {
			return fmt.Errorf("the content's sha256 is %s, expected %s", s, v.expected)
		}
	}
	return nil
}

// sum returns the hex hash (the relay's algorithm) of what was copied.
func (v *verifier) sum() string { return hex.EncodeToString(v.hasher.Sum(nil)) }

// announcedHash reads the relay's hash of a file from an answer's headers:
// ETag (the hex hash, quoted) and Keel-Hash-Algorithm (inferred from the
// length when absent).
func announcedHash(hdr http.Header) (string, crypto.Hash, string, error) {
	etag := strings.TrimPrefix(hdr.Get("ETag"), "W/")
	sum := strings.Trim(etag, `"`)
	b, err := hex.DecodeString(sum)
	if sum == "" || err != nil {
		return "", 0, "", fmt.Errorf("the relay's answer has no usable ETag (%q): the content cannot be verified", etag)
	}
	algo := strings.ToLower(hdr.Get("Keel-Hash-Algorithm"))
	if algo == "" {
		algo = map[int]string{20: "sha1", 32: "sha256", 64: "sha512"}[len(b)]
	}
	h := map[string]crypto.Hash{"sha1": crypto.SHA1, "sha256": crypto.SHA256, "sha512": crypto.SHA512}[algo]
	if h == 0 {
		return "", 0, "", fmt.Errorf("the relay's hash algorithm %q is not sha1, sha256 or sha512", hdr.Get("Keel-Hash-Algorithm"))
	}
	if len(b) != h.Size() {
		return "", 0, "", fmt.Errorf("the relay's ETag %s is not a %s hash", etag, algo)
	}
	return algo, h, sum, nil
}

// IsNotFound reports whether err says the relay holds no such file.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// ParseMode parses an octal permission string such as "0644".
func ParseMode(s string) (fs.FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("mode %q is not octal permissions such as 0644", s)
	}
	return fs.FileMode(n), nil
}
