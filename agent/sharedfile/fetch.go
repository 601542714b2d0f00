package sharedfile

import (
	"context"
	"crypto"
	_ "crypto/sha1" // crypto.SHA1 for a relay that stored a sha1 hash
	_ "crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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
// and renamed onto dest. On any failure dest is left as it was and the
// temporary file is removed. A file the relay does not hold gives an error
// wrapping ErrNotFound.
func (c *Client) Fetch(ctx context.Context, source, fileID, dest string, o FetchOptions) (FetchResult, error) {
	target := c.id.NodeID
	if err := checkIDs(target, source, fileID); err != nil {
		return FetchResult{}, err
	}
	if o.Hash != "" {
		if b, err := hex.DecodeString(o.Hash); err != nil || len(b) != 32 {
			return FetchResult{}, fmt.Errorf("expected hash %q is not a hex SHA-256", o.Hash)
		}
	}
	if o.Mode == 0 {
		o.Mode = 0o600
	}
	u := c.FileURL(target, source, fileID)
	ctx, dog, stop := newWatchdog(ctx, c.timeout)
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return FetchResult{}, fmt.Errorf("GET %s: %w", u, err)
	}
	if err := reqauth.Sign(req, target, c.id.Key, time.Now()); err != nil {
		return FetchResult{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return FetchResult{}, requestError(ctx, "GET "+u, err)
	}
	defer resp.Body.Close()
	dog.Kick()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return FetchResult{}, fmt.Errorf("GET %s: %w (the relay holds no such file for %s, or it expired)", u, ErrNotFound, target)
	case resp.StatusCode != http.StatusOK:
		return FetchResult{}, fmt.Errorf("GET %s: relay answered %s", u, answerText(resp))
	}
	algo, h, want, err := announcedHash(resp.Header)
	if err != nil {
		return FetchResult{}, fmt.Errorf("GET %s: %w", u, err)
	}
	if o.Hash != "" && algo == "sha256" && !strings.EqualFold(o.Hash, want) {
		return FetchResult{}, fmt.Errorf("GET %s: the relay holds content with sha256 %s, not the expected %s", u, want, o.Hash)
	}

	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".keel-tmp-*")
	if err != nil {
		return FetchResult{}, fmt.Errorf("temporary file for %s: %w", dest, err)
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	hasher := h.New()
	var sha256er = hasher
	if algo != "sha256" && o.Hash != "" {
		sha256er = crypto.SHA256.New()
	}
	var src io.Reader = kickReader{r: resp.Body, w: dog}
	if resp.ContentLength >= 0 {
		src = io.LimitReader(src, resp.ContentLength+1)
	}
	w := io.MultiWriter(tmp, hasher)
	if sha256er != hasher {
		w = io.MultiWriter(tmp, hasher, sha256er)
	}
	n, err := io.Copy(w, src)
	if err != nil {
		return FetchResult{}, requestError(ctx, fmt.Sprintf("GET %s: after %d bytes", u, n), err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return FetchResult{}, fmt.Errorf("GET %s: got %d bytes, the relay announced %d; %s left unchanged", u, n, resp.ContentLength, dest)
	}
	got := hex.EncodeToString(hasher.Sum(nil))
	if !strings.EqualFold(got, want) {
		return FetchResult{}, fmt.Errorf("GET %s: the content's %s is %s, the relay announced %s; %s left unchanged", u, algo, got, want, dest)
	}
	if o.Hash != "" {
		if s := hex.EncodeToString(sha256er.Sum(nil)); !strings.EqualFold(s, o.Hash) {
			return FetchResult{}, fmt.Errorf("GET %s: the content's sha256 is %s, expected %s; %s left unchanged", u, s, o.Hash, dest)
		}
	}
	if err := tmp.Chmod(o.Mode); err != nil {
		return FetchResult{}, fmt.Errorf("%s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return FetchResult{}, fmt.Errorf("%s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return FetchResult{}, fmt.Errorf("%s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		os.Remove(tmp.Name())
		return FetchResult{}, fmt.Errorf("renaming into %s: %w", dest, err)
	}
	keep = true
	syncDir(filepath.Dir(dest))
	c.log.Debug("file fetched", "url", u, "dest", dest, "bytes", n)
	return FetchResult{Size: n, Hash: got, Algorithm: algo}, nil
}

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

// syncDir makes a rename in dir durable; errors are ignored (some systems
// cannot sync a directory).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
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
