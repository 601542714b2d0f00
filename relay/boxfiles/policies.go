package boxfiles

import (
	"io/fs"
	"net/http"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/internal/wire/ids"
)

// Policies handles GET and HEAD /policies/:uuid/*path: the file policies.path/<uuid>/<path>,
// served only to the node whose client certificate names <uuid> (403 otherwise, always on
// plain HTTP). The root is policies.path/<uuid>: no link leads out of the node's directory.
func (h *Handler) Policies(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	uuid := ps.ByName("uuid")
	if node, ok := h.clientNode(r); !ok || node != uuid {
		reply(w, r, http.StatusForbidden, "forbidden: the policies of a node are served only to its client certificate\n")
		return
	}
	// The node's own directory is the root (a certificate naming "." or ".." gets no other
	// one): not even a link leads to another node's policies.
	if err := ids.ValidNodeID(uuid); err != nil {
		reply(w, r, http.StatusBadRequest, "bad node id\n")
		return
	}
	h.serveTree(w, r, "policies", filepath.Join(h.opts.Policies, uuid), ps.ByName("path"))
}

// Common handles GET and HEAD /common/*path: the file policies.common_path/<path>. It asks
// for no certificate beyond the listener's rules (a certificate presented on TLS is one of
// the node certificates).
func (h *Handler) Common(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	h.serveTree(w, r, "common", h.opts.Common, ps.ByName("path"))
}

// serveTree serves the regular file p (a request path) under dir with an ETag; conditional
// requests (If-None-Match → 304) and ranges as http.ServeContent does them.
func (h *Handler) serveTree(w http.ResponseWriter, r *http.Request, route, dir, p string) {
	name, err := cleanPath(p)
	if err != nil {
		reply(w, r, http.StatusBadRequest, err.Error()+"\n")
		return
	}
	if name == "" || strings.HasSuffix(name, "/") {
		reply(w, r, http.StatusNotFound, "not found\n")
		return
	}
	f, fi, err := openFile(dir, name)
	if err != nil {
		h.openError(w, r, route, err, "not found\n")
		return
	}
	defer f.Close()
	w.Header().Set("ETag", ETag(fi))
	http.ServeContent(w, r, path.Base(name), fi.ModTime(), f)
}

// ETag is the strong entity tag of a file: its size and modification time (nanoseconds),
// in hexadecimal. A rewritten file gets a new one (its modification time changes).
func ETag(fi fs.FileInfo) string {
	return `"` + strconv.FormatInt(fi.Size(), 16) + "-" + strconv.FormatInt(fi.ModTime().UnixNano(), 16) + `"`
}
