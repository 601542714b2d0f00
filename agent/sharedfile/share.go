package sharedfile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/keel-relay/keel/internal/wire/sigblock"
	"github.com/keel-relay/keel/internal/wire/ttl"
)

// HashFile returns the hex SHA-256 of the file at path and its size, reading
// it as a stream.
func HashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Has asks the relay whether it holds the file target/source/fileID with the
// hex hash sum: true for 200, false for 404, an error for anything else.
func (c *Client) Has(ctx context.Context, target, source, fileID, sum string) (bool, error) {
	if err := checkIDs(target, source, fileID); err != nil {
		return false, err
	}
	if _, err := hex.DecodeString(sum); err != nil || sum == "" {
		return false, fmt.Errorf("hash %q is not a hex digest", sum)
	}
	u := c.FileURL(target, source, fileID) + "?hash=" + url.QueryEscape(sum)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return false, fmt.Errorf("HEAD %s: %w", u, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false, requestError(ctx, "HEAD "+u, err)
	}
	defer resp.Body.Close()
	c.log.Debug("HEAD answered", "url", u, "status", resp.StatusCode)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("HEAD %s: relay answered %s", u, resp.Status)
}

// ShareResult says what Share did.
type ShareResult struct {
	// Sent is false when the relay already held the same content (nothing
	// was uploaded).
	Sent bool
	// Size and Hash (hex SHA-256) describe the file.
	Size int64
	Hash string
	// URL is the file's URL on the relay.
	URL string
}

// Share sends the file at path to node target as fileID, from this node,
// to be kept for ttlText (the relay's TTL grammar, e.g. "1d"). It signs the
// file (one pass over it), asks the relay whether it already holds that
// content (HEAD), and only if not sends the signature block followed by the
// file, read again as a stream: the file is never held in memory. A file that
// changes while it is sent fails the upload (the relay then stores nothing).
func (c *Client) Share(ctx context.Context, target, fileID, path, ttlText string) (ShareResult, error) {
	source := c.id.NodeID
	if err := checkIDs(target, source, fileID); err != nil {
		return ShareResult{}, err
	}
	if _, err := ttl.Parse(ttlText); err != nil {
		return ShareResult{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return ShareResult{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ShareResult{}, err
	}
	if !fi.Mode().IsRegular() {
		return ShareResult{}, fmt.Errorf("%s is not a regular file", path)
	}
	block, err := sigblock.Sign(c.id.Key, Algorithm, f, c.id.Hostname, c.id.KeyDate, c.id.KeyID, "")
	if err != nil {
		return ShareResult{}, fmt.Errorf("%s: %w", path, err)
	}
	res := ShareResult{Hash: block.HashValue, URL: c.FileURL(target, source, fileID)}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return ShareResult{}, fmt.Errorf("%s: %w", path, err)
	}
	res.Size = size

	present, err := c.Has(ctx, target, source, fileID, block.HashValue)
	if err != nil {
		return res, err
	}
	if present {
		c.log.Debug("relay already holds this content; nothing sent", "url", res.URL, "hash", res.Hash)
		return res, nil
	}

	var head bytes.Buffer
	if _, err := block.WriteTo(&head); err != nil {
		return res, err
	}
	ctx, dog, stop := newWatchdog(ctx, c.timeout)
	defer stop()
	resp, err := c.put(ctx, dog, f, head.Bytes(), size, block.HashValue, res.URL, ttlText, true)
	if err == nil && resp.StatusCode == http.StatusExpectationFailed {
		// A proxy on the way that refuses "Expect: 100-continue": send the body at once.
		resp.Body.Close()
		c.log.Debug("Expect: 100-continue refused (417); sending the body without it", "url", res.URL)
		resp, err = c.put(ctx, dog, f, head.Bytes(), size, block.HashValue, res.URL, ttlText, false)
	}
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	dog.Kick()
	if resp.StatusCode/100 != 2 {
		return res, fmt.Errorf("PUT %s: relay answered %s", res.URL, answerText(resp))
	}
	res.Sent = true
	c.log.Debug("file sent", "url", res.URL, "bytes", size)
	return res, nil
}

// put sends the signature block head and the size bytes of f (from its start, checked
// against hash) to fileURL with the TTL ttlText. With expect, a large body waits for the
// relay's "100 Continue" (as curl does), so that a relay refusing the file (too large, disk
// full, bad signature block) answers before the body is sent.
func (c *Client) put(ctx context.Context, dog *watchdog, f *os.File, head []byte, size int64, hash, fileURL, ttlText string, expect bool) (*http.Response, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	content := &checkedReader{r: f, left: size, h: sha256.New(), want: hash, path: f.Name()}
	body := kickReader{r: io.MultiReader(bytes.NewReader(head), content), w: dog}
	u := fileURL + "?ttl=" + url.QueryEscape(ttlText)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, io.NopCloser(body))
	if err != nil {
		return nil, fmt.Errorf("PUT %s: %w", u, err)
	}
	req.ContentLength = int64(len(head)) + size
	req.Header.Set("Content-Type", "application/octet-stream")
	if expect && req.ContentLength > expectContinueMin {
		req.Header.Set("Expect", "100-continue")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if content.err != nil {
			return nil, content.err
		}
		return nil, requestError(ctx, "PUT "+fileURL, err)
	}
	if resp.StatusCode/100 == 2 && content.err != nil {
		resp.Body.Close()
		return nil, content.err
	}
	return resp, nil
}

// expectContinueMin is the body size above which Share asks for "100 Continue" first.
const expectContinueMin = 64 << 10

// checkedReader reads exactly left bytes of a file and, at their end, fails
// unless they hash to want and the file has no more: the content sent must be
// the content signed.
type checkedReader struct {
	r    io.Reader
	left int64
	h    hash.Hash
	want string
	path string
	err  error
}

func (c *checkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.left == 0 {
		return 0, c.finish()
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.left -= int64(n)
	switch {
	case errors.Is(err, io.EOF) && c.left > 0:
		c.err = fmt.Errorf("%s shrank while it was being sent", c.path)
		return n, c.err
	case err != nil && !errors.Is(err, io.EOF):
		c.err = fmt.Errorf("reading %s: %w", c.path, err)
		return n, c.err
	}
	return n, nil
}

// finish checks the end of the file once its signed size has been sent.
func (c *checkedReader) finish() error {
	var one [1]byte
	if n, _ := c.r.Read(one[:]); n > 0 {
		c.err = fmt.Errorf("%s grew while it was being sent", c.path)
		return c.err
	}
	if got := hex.EncodeToString(c.h.Sum(nil)); got != c.want {
		c.err = fmt.Errorf("%s changed while it was being sent (sha256 %s, signed %s)", c.path, got, c.want)
		return c.err
	}
	return io.EOF
}
