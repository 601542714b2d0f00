package sharedfiles

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/relay/forward"
	"github.com/keel-relay/keel/relay/uploadbody"
	"github.com/keel-relay/keel/storage"
)

// maxHashHex bounds the hex digest of a HEAD (SHA-512 is 128 hex digits).
const maxHashHex = 256

// validHash reports whether hash is a hex digest a stored file could have.
func validHash(hash string) bool {
	if hash == "" || len(hash) > maxHashHex {
		return false
	}
	_, err := hex.DecodeString(hash)
	return err == nil
}

// Head handles HEAD /shared-files/:target/:source/:file?hash=<hex>: 200 when the file is
// stored here, not expired, with that hash; 404 otherwise, also for a missing, empty or
// malformed hash.
func (h *Handler) Head(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	k, ok := requestKey(w, r, ps)
	if !ok {
		return
	}
	hash := r.URL.Query().Get("hash")
	if !validHash(hash) {
		// No file has this hash: "absent", as relayd answers (SPEC-relay-api.md: 200 only
		// for a stored file whose hash equals hash, 404 otherwise). The agent then sends it.
		uploadbody.Reply(w, r, http.StatusNotFound, "")
		return
	}
	dest, ok := h.route(h.nodes(), k.Target)
	if !ok {
		uploadbody.Reply(w, r, http.StatusNotFound, "")
		return
	}
	if dest.local {
		meta, err := h.store.StatFile(k)
		if err != nil || !meta.Expires.After(h.now()) || !strings.EqualFold(meta.Hash, hash) {
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				h.log.Error("HEAD: read metadata", "file", k.String(), "err", err)
				uploadbody.Reply(w, r, http.StatusInternalServerError, "")
				return
			}
			uploadbody.Reply(w, r, http.StatusNotFound, "")
			return
		}
		fileHeaders(w, meta)
		w.WriteHeader(http.StatusOK)
		return
	}
	hop, err := h.hops.Resolve(dest.nextHop)
	if err != nil {
		h.log.Warn("HEAD: next hop unusable", "file", k.String(), "err", err)
		uploadbody.Reply(w, r, http.StatusBadGateway, "")
		return
	}
	// Not cancelled with the request: net/http cancels it when a client half-closes its side
	// (golang/go#18527), and such a client still reads the answer. HeadTimeout bounds it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.opts.HeadTimeout)
	defer cancel()
	status, hdr, err := forward.Head(ctx, hop, k, hash)
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, context.DeadlineExceeded) {
			code = http.StatusGatewayTimeout
		}
		h.log.Warn("HEAD: next hop unreachable", "file", k.String(), "hop", hop.Name(), "err", err)
		uploadbody.Reply(w, r, code, "")
		return
	}
	switch status {
	case http.StatusOK:
		for _, name := range []string{"Content-Length", "ETag", "Last-Modified", "Expires"} {
			if v := hdr.Get(name); v != "" {
				w.Header().Set(name, v)
			}
		}
		if w.Header().Get("Content-Length") == "" {
			w.Header().Set("Content-Length", "0")
		}
		w.WriteHeader(http.StatusOK)
	case http.StatusNotFound:
		uploadbody.Reply(w, r, http.StatusNotFound, "")
	default:
		// Anything else from the next hop is its trouble, not an answer about the file.
		h.log.Warn("HEAD: next hop answered", "file", k.String(), "hop", hop.Name(), "status", status)
		uploadbody.Reply(w, r, http.StatusBadGateway, "")
	}
}

func fileHeaders(w http.ResponseWriter, meta storage.FileMeta) {
	w.Header().Set("Content-Length", strconv.FormatInt(meta.Size, 10))
	w.Header().Set("ETag", `"`+meta.Hash+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Last-Modified", meta.Stored.UTC().Format(http.TimeFormat))
	w.Header().Set("Expires", meta.Expires.UTC().Format(http.TimeFormat))
	w.Header().Set("Keel-Hash-Algorithm", meta.Algorithm)
}
