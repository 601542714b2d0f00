package sharedfiles

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/internal/wire/keyhash"
	"github.com/keel-relay/keel/internal/wire/reqauth"
	"github.com/keel-relay/keel/relay/uploadbody"
	"github.com/keel-relay/keel/storage"
)

// Get handles GET /shared-files/:target/:source/:file: only the target node, proving its
// identity with a request signed by its key (package reqauth), may download.
func (h *Handler) Get(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	k, ok := requestKey(w, r, ps)
	if !ok {
		return
	}
	m := h.nodes()
	caller, err := reqauth.Verify(r, func(id string) (keyhash.Pin, bool) {
		node, ok := m.Node(id)
		if !ok {
			return keyhash.Pin{}, false
		}
		pin, err := keyhash.Parse(node.KeyHash)
		return pin, err == nil
	}, h.now(), reqauth.DefaultWindow)
	if err != nil {
		h.log.Warn("GET refused", "file", k.String(), "peer", r.RemoteAddr, "reason", err)
		uploadbody.Reply(w, r, http.StatusForbidden, err.Error())
		return
	}
	if caller != k.Target {
		h.log.Warn("GET refused: caller is not the target", "file", k.String(), "caller", caller)
		uploadbody.Reply(w, r, http.StatusForbidden, fmt.Sprintf("node %s is not the target of this file", caller))
		return
	}
	meta, content, err := h.store.OpenFile(k)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			uploadbody.Reply(w, r, http.StatusNotFound, "no such file")
			return
		}
		h.log.Error("GET: open file", "file", k.String(), "err", err)
		uploadbody.Reply(w, r, http.StatusInternalServerError, "storage failure")
		return
	}
	defer content.Close()
	if !meta.Expires.After(h.now()) {
		uploadbody.Reply(w, r, http.StatusNotFound, "no such file")
		return
	}
	fileHeaders(w, meta)
	w.WriteHeader(http.StatusOK)
	// A reader that stops reading is cut after the idle timeout: it would otherwise pin a
	// store snapshot and a connection forever.
	out := &idleWriter{w: w, rc: http.NewResponseController(w), idle: h.opts.BodyIdleTimeout}
	if _, err := io.Copy(out, content); err != nil {
		h.log.Warn("GET: transfer cut", "file", k.String(), "err", err)
	}
}
