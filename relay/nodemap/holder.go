package nodemap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Holder holds the live node map and reloads it from its file. A file that fails to load never
// replaces the current map. Current is safe to call from any goroutine.
type Holder struct {
	self string
	log  *slog.Logger
	cur  atomic.Pointer[Map]

	mu            sync.Mutex // serialises loads and guards seen and beforeInstall
	seen          fileID     // the last file version loaded, successfully or not
	beforeInstall func(*Map)
}

// fileID identifies a version of the node map file.
type fileID struct {
	size  int64
	mtime time.Time
	sum   [sha256.Size]byte
	ok    bool // the fields above are set
}

// NewHolder returns a Holder for the relay self, starting with Empty(self).
func NewHolder(self string, log *slog.Logger) *Holder {
	h := &Holder{self: self, log: log}
	h.cur.Store(Empty(self))
	return h
}

// Current returns the live map.
func (h *Holder) Current() *Map { return h.cur.Load() }

// Set replaces the live map.
func (h *Holder) Set(m *Map) { h.cur.Store(m) }

// BeforeInstall sets fn, called with every map that parsed, before it becomes current (with the
// holder's loads waiting). The relay uses it to mark the copy it keeps in its store as
// superseded before it routes with another map. Call it before any load.
func (h *Holder) BeforeInstall(fn func(*Map)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.beforeInstall = fn
}

// LoadFile reads and parses the map at path. On success the new map becomes current and is
// returned; on error the current map stays and the error is returned. Either way the file's
// version is remembered, so Watch does not load it again until it changes.
func (h *Holder) LoadFile(path string) (*Map, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.load(path)
}

// load reads and parses the file at path as it streams, remembers its version and, on
// success, makes the map current. h.mu must be held.
func (h *Holder) load(path string) (*Map, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load node map: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load node map: %w", err)
	}
	sum := sha256.New()
	m, err := parse(f, sum, h.self)
	if err == nil {
		m.digest = hex.EncodeToString(sum.Sum(nil))
	} else if _, cerr := io.Copy(sum, f); cerr != nil { // the rest of a refused file, for seen
		err = errors.Join(err, fmt.Errorf("read: %w", cerr))
	}
	h.seen = fileID{size: fi.Size(), mtime: fi.ModTime(), ok: true}
	copy(h.seen.sum[:], sum.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("load node map %s: %w", path, err)
	}
	if h.beforeInstall != nil {
		h.beforeInstall(m)
	}
	h.cur.Store(m)
	return m, nil
}

// Watch polls path every interval until ctx is done. When the file's size or modification time
// changed, and then stayed the same for one more interval (so that a file being rewritten in
// place is not read half-written), and its content differs from the version last seen, it loads
// the file (as LoadFile), logs the outcome and calls onLoad (if not nil) with it. A file that
// cannot be read is reported once, until it can be read again. interval must be positive.
func (h *Holder) Watch(ctx context.Context, path string, interval time.Duration, onLoad func(*Map, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var readErr string // the read error last reported, "" when the file was readable
	var pending stamp  // the changed size and mtime seen at the previous poll
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, m, err := h.poll(path, &pending)
		var re readError
		if errors.As(err, &re) {
			if err.Error() == readErr {
				continue
			}
			readErr = err.Error()
		} else {
			readErr = ""
		}
		if !changed {
			continue
		}
		if err != nil {
			h.log.Warn("node map reload failed, keeping the current map", "path", path, "err", err)
		} else {
			h.log.Info("node map reloaded", "path", path, "nodes", m.Len(), "digest", m.Digest())
		}
		if onLoad != nil {
			onLoad(m, err)
		}
	}
}

// readError marks a file that could not be read in Watch.
type readError struct{ error }

func (e readError) Unwrap() error { return e.error }

// stamp is a file's size and modification time.
type stamp struct {
	size  int64
	mtime time.Time
	ok    bool
}

func stampOf(fi fs.FileInfo) stamp { return stamp{size: fi.Size(), mtime: fi.ModTime(), ok: true} }

func (s stamp) equal(o stamp) bool { return s.ok && o.ok && s.size == o.size && s.mtime.Equal(o.mtime) }

// poll checks the file once and loads it if it changed and has been stable since the previous
// poll (*pending). changed says whether there is something to report.
func (h *Holder) poll(path string, pending *stamp) (changed bool, m *Map, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fi, err := os.Stat(path)
	if err != nil {
		*pending = stamp{}
		return true, nil, readError{fmt.Errorf("load node map: %w", err)}
	}
	now := stampOf(fi)
	if h.seen.ok && now.equal(stamp{size: h.seen.size, mtime: h.seen.mtime, ok: true}) {
		*pending = stamp{}
		return false, nil, nil
	}
	if !now.equal(*pending) {
		*pending = now // changed: wait one interval for the writer to finish
		return false, nil, nil
	}
	*pending = stamp{}
	sum, err := hashFile(path)
	if err != nil {
		return true, nil, readError{fmt.Errorf("load node map: %w", err)}
	}
	if h.seen.ok && sum == h.seen.sum {
		// Touched or rewritten identically: nothing to load.
		h.seen.size, h.seen.mtime = fi.Size(), fi.ModTime()
		return false, nil, nil
	}
	m, err = h.load(path)
	var pe *fs.PathError
	if errors.As(err, &pe) { // vanished or unreadable since it was hashed
		return true, nil, readError{err}
	}
	return true, m, err
}

// hashFile returns the SHA-256 of the file at path, read as a stream.
func hashFile(path string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
