package boxfiles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// notFound is the body of a GET of a missing shared-folder file, as relayd answers.
const notFound = "NOT FOUND"

// SharedFolder handles GET and HEAD <prefix>/shared-folder/*path. On a TLS listener it
// wants a node client certificate (403 without); a plain-HTTP listener asks for none.
//
// HEAD ?hash=<hex>&hash_type=sha256|sha512: 404 for a missing file, 200 for an empty or
// absent hash, 400 for a malformed hash or an unknown type, 304 when the file has that
// hash, 200 when not; the body is always empty. GET: 200 and the bytes, or 404 "NOT FOUND".
func (h *Handler) SharedFolder(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	if r.TLS != nil {
		if _, ok := h.clientNode(r); !ok {
			reply(w, r, http.StatusForbidden, "forbidden: a node client certificate is required\n")
			return
		}
	}
	name, err := cleanPath(ps.ByName("path"))
	if err != nil {
		reply(w, r, http.StatusBadRequest, err.Error()+"\n")
		return
	}
	if name == "" || strings.HasSuffix(name, "/") {
		reply(w, r, http.StatusNotFound, notFound)
		return
	}
	f, fi, err := openFile(h.opts.SharedFolder, name)
	if err != nil {
		h.openError(w, r, "shared-folder", err, notFound)
		return
	}
	defer f.Close()
	if r.Method == http.MethodHead {
		h.headShared(w, r, f)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, f); err != nil {
		h.log.Debug("shared folder: GET cut short", "path", r.URL.Path, "err", err)
	}
}

// headShared answers a HEAD of the shared-folder file f.
func (h *Handler) headShared(w http.ResponseWriter, r *http.Request, f io.Reader) {
	q := r.URL.Query()
	want := q.Get("hash")
	if want == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	sum, digest, err := parseHash(q.Get("hash_type"), want)
	if err != nil {
		reply(w, r, http.StatusBadRequest, "")
		return
	}
	if _, err := io.Copy(sum, ctxReader{r.Context(), f}); err != nil {
		if r.Context().Err() != nil {
			// The client left: nobody reads this answer.
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h.log.Error("shared folder: hash a file", "path", r.URL.Path, "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if bytes.Equal(sum.Sum(nil), digest) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// ctxReader reads r until ctx ends: a client leaving stops the hashing of a large file.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// errBadHash is parseHash's refusal (400).
var errBadHash = errors.New("bad hash")

// parseHash reads a shared-folder HEAD's hash_type and hash: the type "sha256" (also when
// empty) or "sha512", in any case; the hash in hexadecimal, either case, exactly as long as
// the type's digests. It returns a new hash of that type and the digest.
func parseHash(hashType, hexDigest string) (hash.Hash, []byte, error) {
	var sum hash.Hash
	switch strings.ToLower(hashType) {
	case "", "sha256":
		sum = sha256.New()
	case "sha512":
		sum = sha512.New()
	default:
		return nil, nil, fmt.Errorf("%w: unknown hash_type %q", errBadHash, hashType)
	}
	if len(hexDigest) != 2*sum.Size() {
		return nil, nil, fmt.Errorf("%w: %d hex digits, want %d", errBadHash, len(hexDigest), 2*sum.Size())
	}
	digest, err := hex.DecodeString(hexDigest)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadHash, err)
	}
	return sum, digest, nil
}
