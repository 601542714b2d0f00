package htpasswd

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"
)

// statEvery is how often, at most, a Watched looks at its file again.
const statEvery = time.Second

// cacheSize bounds the credentials a Watched remembers as verified.
const cacheSize = 256

// Watched is an htpasswd file that is read again when it changes (another modification time,
// size or inode, looked at no more than once a second), with a bounded cache of the
// credentials verified since the last change, so that bcrypt's cost is not paid on every
// request. It is safe for concurrent use.
//
// A missing file verifies nothing. A file that cannot be read or parsed leaves the last good
// one in force; each such state is logged once.
type Watched struct {
	path  string
	log   *slog.Logger
	every time.Duration
	key   [32]byte // HMAC key of the cache, so the cache holds no plain password digest

	mu      sync.Mutex
	checked time.Time   // when the file was last looked at
	info    fs.FileInfo // the file f was read from; nil when none
	f       *File       // nil when missing or never read
	badWhy  string      // why the file was last logged as not usable; "" when it is
	badInfo fs.FileInfo // the file then, if it could be opened
	gen     uint64      // incremented when f changes, so a late cache insert of an old f is dropped
	cache   map[[32]byte]struct{}
}

// NewWatched returns the htpasswd file at path, read now and again when it changes. Problems
// are logged to log.
func NewWatched(path string, log *slog.Logger) *Watched {
	w := &Watched{path: path, log: log, every: statEvery, cache: make(map[[32]byte]struct{})}
	_, _ = rand.Read(w.key[:]) // never fails: it returns no error since Go 1.24
	w.mu.Lock()
	w.refreshLocked(time.Now())
	w.mu.Unlock()
	return w
}

// Verify reports whether password is user's password in the file in force. With no file
// (missing, or never readable) it is false.
func (w *Watched) Verify(user, password string) bool {
	mac := hmac.New(sha256.New, w.key[:])
	mac.Write([]byte(user))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var key [32]byte
	mac.Sum(key[:0])

	w.mu.Lock()
	w.refreshLocked(time.Now())
	f, gen := w.f, w.gen
	_, hit := w.cache[key]
	w.mu.Unlock()
	if f == nil {
		return false
	}
	if hit {
		return true
	}
	if !f.Verify(user, password) { // slow (bcrypt): outside the lock
		return false
	}
	w.mu.Lock()
	if w.gen == gen {
		if len(w.cache) >= cacheSize {
			for k := range w.cache { // evict one arbitrary entry
				delete(w.cache, k)
				break
			}
		}
		w.cache[key] = struct{}{}
	}
	w.mu.Unlock()
	return true
}

// refreshLocked reads the file again if it changed and w.every has passed since it was last
// looked at. w.mu is held.
func (w *Watched) refreshLocked(now time.Time) {
	if !w.checked.IsZero() && now.Sub(w.checked) < w.every && now.Sub(w.checked) >= 0 {
		return
	}
	w.checked = now
	info, err := os.Stat(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		if w.noteBadLocked("missing", nil) {
			w.log.Warn("htpasswd file missing: no credentials accepted", "path", w.path)
		}
		w.setLocked(nil, nil)
		return
	}
	if err == nil && w.info != nil && sameFile(w.info, info) {
		return
	}
	f, info, err := load(w.path)
	if err != nil {
		if w.noteBadLocked(err.Error(), info) {
			if w.f != nil {
				w.log.Warn("htpasswd file not usable: keeping the last good one", "path", w.path, "err", err)
			} else {
				w.log.Warn("htpasswd file not usable: no credentials accepted", "path", w.path, "err", err)
			}
		}
		return
	}
	if w.badWhy != "" {
		w.log.Info("htpasswd file usable again", "path", w.path, "users", f.Len())
	}
	w.badWhy, w.badInfo = "", nil
	if u := f.Unsupported(); len(u) > 0 {
		w.log.Warn("htpasswd users with an unsupported hash scheme never match", "path", w.path, "users", len(u))
	}
	w.setLocked(f, info)
}

// noteBadLocked records that the file is not usable for reason why (the file being info, nil
// if it could not be opened), and reports whether that is news to log: another reason or
// another file than the last one logged. w.mu is held.
func (w *Watched) noteBadLocked(why string, info fs.FileInfo) bool {
	same := why == w.badWhy && (info == nil) == (w.badInfo == nil) &&
		(info == nil || sameFile(info, w.badInfo))
	w.badWhy, w.badInfo = why, info
	return !same
}

// setLocked puts f (read from the file info) in force and forgets the cache. w.mu is held.
func (w *Watched) setLocked(f *File, info fs.FileInfo) {
	if f == nil && w.f == nil {
		return
	}
	w.f, w.info = f, info
	w.gen++
	clear(w.cache)
}

// load reads and parses the file at path, returning the information of the file read (nil if
// it could not be opened).
func load(path string) (*File, fs.FileInfo, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		return nil, nil, err
	}
	f, err := Parse(fh)
	if err != nil {
		return nil, info, err
	}
	return f, info, nil
}

// sameFile reports whether a and b describe the same file content as far as stat tells:
// same file (inode), modification time and size.
func sameFile(a, b fs.FileInfo) bool {
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}
