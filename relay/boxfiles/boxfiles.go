// Package boxfiles serves what agents download from a relay box (SPEC-relay-box.md,
// "Downloads for agents"): the relay's node id at /uuid, the shared folder with its hash
// check, and the policies (/policies/<uuid>/, /common/) with ETag and If-None-Match.
// Every file is opened through an os.Root over its directory, so nothing outside it is ever
// served.
package boxfiles

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"syscall"

	"github.com/julienschmidt/httprouter"
)

// Options are what the handlers serve.
type Options struct {
	// NodeID is the relay's own node id, the body of GET /uuid.
	NodeID string
	// SharedFolder is the shared folder's directory (shared_folder.path).
	SharedFolder string
	// Policies is the directory of the nodes' policies (policies.path), one subdirectory
	// per node id.
	Policies string
	// Common is the directory served under /common/ (policies.common_path).
	Common string
	// ClientNode names the node of the request's verified client certificate
	// (nodecerts.NodeID); false on plain HTTP or without a certificate. Nil: never a node.
	ClientNode func(*http.Request) (string, bool)
	Log        *slog.Logger
}

// Handler serves the downloads. Its methods are httprouter handles; the caller mounts them
// (relay/downloads.go) behind the network access lists.
type Handler struct {
	opts Options
	log  *slog.Logger
}

// New returns a Handler serving what opts names.
func New(opts Options) *Handler {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{opts: opts, log: log}
}

// UUID handles GET and HEAD /uuid: the relay's node id as text/plain, without a trailing
// newline (agents check it against ^[a-z0-9-]+$).
func (h *Handler) UUID(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(h.opts.NodeID)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, h.opts.NodeID)
	}
}

// clientNode is the node of r's client certificate, if any.
func (h *Handler) clientNode(r *http.Request) (string, bool) {
	if h.opts.ClientNode == nil {
		return "", false
	}
	return h.opts.ClientNode(r)
}

// reply writes an answer with a short text body (none to a HEAD).
func reply(w http.ResponseWriter, r *http.Request, code int, body string) {
	if body == "" || r.Method == http.MethodHead {
		w.WriteHeader(code)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

// errNotRegular is the answer for a name that is not a regular file (a directory, a
// device): served as missing, never listed.
var errNotRegular = errors.New("not a regular file")

// openFile opens the regular file name (a cleanPath result) under dir through an os.Root:
// symbolic links may not lead out of dir. It returns the open file and its information.
func openFile(dir, name string) (*os.File, fs.FileInfo, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("open served directory: %w", err)
	}
	defer root.Close()
	// Stat before opening: opening a FIFO would block.
	fi, err := root.Stat(name)
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: %w", name, errNotRegular)
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, nil, err
	}
	if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%s: %w", name, errNotRegular)
		}
		return nil, nil, err
	}
	return f, fi, nil
}

// openError answers a failed openFile: 403 when the relay may not read the file, 404 for
// everything else (missing, not a regular file, a symbolic link out of the directory).
func (h *Handler) openError(w http.ResponseWriter, r *http.Request, route string, err error, notFound string) {
	switch {
	case errors.Is(err, fs.ErrPermission):
		h.log.Warn("download: file not readable", "route", route, "path", r.URL.Path, "err", err)
		reply(w, r, http.StatusForbidden, "forbidden\n")
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, errNotRegular), errors.Is(err, syscall.ENOTDIR):
		reply(w, r, http.StatusNotFound, notFound)
	default:
		// Among them os.Root's refusal of a symbolic link out of the directory: only the
		// directory's owner can place one (".." never gets here), so it is worth a warning.
		h.log.Warn("download: file refused", "route", route, "path", r.URL.Path, "err", err)
		reply(w, r, http.StatusNotFound, notFound)
	}
}
