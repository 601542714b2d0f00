package htpasswd

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// logBuf is a concurrency-safe log destination.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count is the number of log lines containing s.
func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func newWatched(t testing.TB, path string) (*Watched, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	w := NewWatched(path, slog.New(slog.NewTextHandler(lb, nil)))
	w.every = 0 // look at the file on every Verify; TestWatchedStatEvery checks the pace
	return w, lb
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestWatched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	w, lb := newWatched(t, path)

	// Missing at start: nothing matches, logged once.
	for range 3 {
		if w.Verify("rudder", "rudder") {
			t.Fatal("a missing file verified")
		}
	}
	if n := lb.count("htpasswd file missing"); n != 1 {
		t.Errorf("missing file logged %d times, want 1", n)
	}

	// Created: read.
	write(t, path, "rudder:"+shaRudder+"\n")
	if !w.Verify("rudder", "rudder") || w.Verify("rudder", "other") {
		t.Fatal("the created file is not in force")
	}

	// Changed: the cached success is forgotten, the new password is in force.
	write(t, path, "rudder:"+apr1MyPassword+"\n")
	if w.Verify("rudder", "rudder") {
		t.Error("an old password verified after the file changed")
	}
	if !w.Verify("rudder", "myPassword") {
		t.Error("the new password does not verify")
	}

	// Broken: the last good file stays in force, logged once.
	write(t, path, "rudder:"+apr1MyPassword+"\nno colon here\n")
	for range 3 {
		if !w.Verify("rudder", "myPassword") {
			t.Fatal("the last good file is not kept while the new one is broken")
		}
	}
	if n := lb.count("keeping the last good one"); n != 1 {
		t.Errorf("broken file logged %d times, want 1", n)
	}
	// Broken differently (another size): logged again.
	write(t, path, "\n\nanother broken line\n")
	w.Verify("rudder", "myPassword")
	if n := lb.count("keeping the last good one"); n != 2 {
		t.Errorf("second broken file logged %d times in all, want 2", n)
	}

	// Fixed: in force, and said so.
	write(t, path, "rudder:"+shaRudder+"\n")
	if !w.Verify("rudder", "rudder") || w.Verify("rudder", "myPassword") {
		t.Error("the fixed file is not in force")
	}
	if n := lb.count("usable again"); n != 2 { // once created, once fixed
		t.Errorf("recovery logged %d times, want 2", n)
	}

	// Removed: nothing matches any more, even what was cached.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if w.Verify("rudder", "rudder") {
		t.Error("a removed file still verifies")
	}
	if n := lb.count("htpasswd file missing"); n != 2 {
		t.Errorf("missing file logged %d times in all, want 2", n)
	}
}

// TestWatchedUnreadable: a file that cannot be read (here a directory in its place, then a file
// too big) leaves the last good one in force, logged once per state however often it is tried.
func TestWatchedUnreadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	write(t, path, "rudder:"+shaRudder+"\n")
	w, lb := newWatched(t, path)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if !w.Verify("rudder", "rudder") {
			t.Fatal("the last good file is not kept while the path is a directory")
		}
	}
	if n := lb.count("keeping the last good one"); n != 1 {
		t.Errorf("unreadable file logged %d times, want 1", n)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	write(t, path, "other:"+shaRudder+"\n"+strings.Repeat("#\n", MaxFileSize/2))
	for range 5 {
		if !w.Verify("rudder", "rudder") || w.Verify("other", "rudder") {
			t.Fatal("the last good file is not kept while the file is too big")
		}
	}
	if n := lb.count("larger than"); n != 1 {
		t.Errorf("file too big logged %d times, want 1", n)
	}
}

// TestWatchedReplaced: a file replaced by rename (another inode) with the same size and
// modification time is read again.
func TestWatchedReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "htpasswd")
	write(t, path, "aaaaaa:"+shaRudder+"\n")
	w, _ := newWatched(t, path)
	if !w.Verify("aaaaaa", "rudder") {
		t.Fatal("not read")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(dir, "next")
	write(t, next, "bbbbbb:"+shaRudder+"\n")
	if err := os.Chtimes(next, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	if w.Verify("aaaaaa", "rudder") || !w.Verify("bbbbbb", "rudder") {
		t.Error("a file replaced by rename, same size and time, was not read again")
	}
}

// TestWatchedStatEvery: the file is looked at again only after w.every.
func TestWatchedStatEvery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	write(t, path, "rudder:"+shaRudder+"\n")
	w, _ := newWatched(t, path)
	w.every = time.Hour
	if !w.Verify("rudder", "rudder") {
		t.Fatal("not read")
	}
	write(t, path, "other:"+shaRudder+"\n")
	if !w.Verify("rudder", "rudder") {
		t.Error("the file was read again before w.every passed")
	}
	w.mu.Lock()
	w.checked = time.Now().Add(-time.Hour)
	w.mu.Unlock()
	if w.Verify("rudder", "rudder") || !w.Verify("other", "rudder") {
		t.Error("the file was not read again after w.every")
	}
}

// TestWatchedCache: a verified bcrypt credential is remembered (a second Verify is fast), the
// cache stays bounded, and failures are not remembered.
func TestWatchedCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	h, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, "rudder:"+string(h)+"\n")
	w, _ := newWatched(t, path)
	if !w.Verify("rudder", "secret") {
		t.Fatal("not verified")
	}
	if w.Verify("rudder", "wrong") || w.Verify("rudder", "secret\x00") || w.Verify("rudder\x00secret", "") {
		t.Fatal("a wrong password verified")
	}
	w.mu.Lock()
	n := len(w.cache)
	w.mu.Unlock()
	if n != 1 {
		t.Errorf("cache holds %d entries after one success and three failures, want 1", n)
	}

	// Fill past the bound with distinct users.
	var b strings.Builder
	for i := range cacheSize + 50 {
		fmt.Fprintf(&b, "u%d:%s\n", i, shaRudder)
	}
	write(t, path, b.String())
	for i := range cacheSize + 50 {
		if !w.Verify(fmt.Sprintf("u%d", i), "rudder") {
			t.Fatalf("u%d not verified", i)
		}
	}
	w.mu.Lock()
	n = len(w.cache)
	w.mu.Unlock()
	if n > cacheSize {
		t.Errorf("cache holds %d entries, bound %d", n, cacheSize)
	}
}

func TestWatchedConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	write(t, path, "rudder:"+shaRudder+"\n")
	w, _ := newWatched(t, path)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				if i == 0 && j%50 == 0 {
					if err := os.WriteFile(path, fmt.Appendf(nil, "rudder:%s\n#%d\n", shaRudder, j), 0o600); err != nil {
						t.Error(err)
					}
				}
				w.Verify("rudder", "rudder")
				w.Verify("rudder", "wrong")
			}
		})
	}
	wg.Wait()
	if !w.Verify("rudder", "rudder") {
		t.Error("not verified after concurrent use")
	}
}

// BenchmarkVerify compares a cached success with a cold bcrypt check at cost 10
// (bcrypt.DefaultCost).
func BenchmarkVerify(b *testing.B) {
	h, err := bcrypt.GenerateFromPassword([]byte("secret"), 10)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "htpasswd")
	write(b, path, "rudder:"+strings.Replace(string(h), "$2a$", "$2y$", 1)+"\n")
	b.Run("cached", func(b *testing.B) {
		w := NewWatched(path, slog.New(slog.DiscardHandler))
		if !w.Verify("rudder", "secret") {
			b.Fatal("not verified")
		}
		for b.Loop() {
			if !w.Verify("rudder", "secret") {
				b.Fatal("not verified")
			}
		}
	})
	b.Run("bcrypt-cold", func(b *testing.B) {
		f, err := Load(path)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if !f.Verify("rudder", "secret") {
				b.Fatal("not verified")
			}
		}
	})
}
