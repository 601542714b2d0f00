package agentuploads

import (
	"fmt"
	"net/http"
	"os"

	"github.com/keel-relay/keel/internal/fsutil"
	"github.com/keel-relay/keel/relay/uploadbody"
)

// keep streams the body into the store and keeps it there until its delivery (durable on
// return); it reports whether an upload of the same kind and name was replaced.
func (h *Handler) keep(r *http.Request, u *upload) (replaced bool, size int64, err error) {
	up, err := h.opts.Store.NewUpload(max(r.ContentLength, -1))
	if err != nil {
		return false, 0, err
	}
	if _, err := up.ReadFrom(uploadbody.Source{R: u.body}); err != nil {
		up.Abort()
		return false, 0, err
	}
	size = up.Size()
	created, err := h.opts.Store.PutAgentUpload(up, u.kind.Dir(), u.name)
	if err != nil {
		return false, 0, fmt.Errorf("keep %s/%s: %w", u.kind.Dir(), u.name, err)
	}
	return !created, size, nil
}

// handOver writes the body atomically into root_dir/<kind's subdirectory>/<name> (synced,
// then renamed into place, the directory synced) for the Rudder server; it reports whether a
// file of that name was replaced. The subdirectories are created when missing; the name is
// resolved inside them (os.Root): it cannot reach anywhere else.
func (h *Handler) handOver(u *upload) (replaced bool, size int64, err error) {
	top, err := os.OpenRoot(h.opts.RootDir)
	if err != nil {
		return false, 0, fmt.Errorf("agent_uploads.root_dir: %w", err)
	}
	defer top.Close()
	sub := u.kind.RootSubdir()
	if err := top.MkdirAll(sub, 0o750); err != nil {
		return false, 0, fmt.Errorf("agent_uploads.root_dir: %w", err)
	}
	dir, err := top.OpenRoot(sub)
	if err != nil {
		return false, 0, fmt.Errorf("agent_uploads.root_dir: %w", err)
	}
	defer dir.Close()
	replaced, err = fsutil.WriteAtomicIn(dir, u.name, 0o640, func(f *os.File) error {
		n, err := f.ReadFrom(uploadbody.Source{R: u.body})
		size = n
		return err
	})
	return replaced, size, err
}
