package nodemap

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

const (
	goodMap  = `{"root": {"hostname": "r", "policy-server": "root"}, "n1": {"hostname": "n1", "policy-server": "root"}}`
	goodMap2 = `{"root": {"hostname": "r", "policy-server": "root"}, "n2": {"hostname": "n2", "policy-server": "root"}}`
	badMap   = `{"root": {"hostname": "r", "policy-server": "root"}, "n3": {"hostname": "n3", "policy-server": "gone"}}`
)

// writeFile replaces path atomically (as the policy server does) with a file holding data and
// modified at mtime, so that a rewrite within the file system's timestamp granularity is still
// seen as a change.
func writeFile(t *testing.T, path, data string, mtime time.Time) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestHolderLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes.json")
	h := NewHolder("root", discard())
	if m := h.Current(); m.Len() != 0 || m.Self() != "root" {
		t.Fatalf("new holder map: %d nodes, self %q", m.Len(), m.Self())
	}

	if _, err := h.LoadFile(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: err = %v", err)
	}

	writeFile(t, path, goodMap, time.Now())
	m, err := h.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if h.Current() != m || m.Route("n1").Kind != Mine {
		t.Fatal("good map not installed")
	}

	writeFile(t, path, badMap, time.Now().Add(time.Second))
	bad, err := h.LoadFile(path)
	want := "load node map " + path + `: node map: policy-server not in the map: n3 -> "gone"`
	if err == nil || err.Error() != want || bad != nil {
		t.Fatalf("bad map: got %v, %v; want error %s", bad, err, want)
	}
	if h.Current() != m {
		t.Fatal("a bad file replaced the good map")
	}

	other := Empty("root")
	h.Set(other)
	if h.Current() != other {
		t.Fatal("Set did not replace the map")
	}
}

type loadResult struct {
	m   *Map
	err error
}

func TestHolderWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes.json")
	base := time.Now().Add(-time.Hour)
	writeFile(t, path, goodMap, base)

	h := NewHolder("root", discard())
	first, err := h.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan loadResult, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Watch(ctx, path, 5*time.Millisecond, func(m *Map, err error) { results <- loadResult{m, err} })
	}()
	defer func() {
		cancel()
		<-done
	}()

	next := func(what string) loadResult {
		t.Helper()
		select {
		case r := <-results:
			return r
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Watch did not report", what)
			return loadResult{}
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case r := <-results:
			t.Fatalf("%s: unexpected report %+v", what, r)
		case <-time.After(50 * time.Millisecond):
		}
	}

	quiet("file already loaded")

	// Same content, new mtime: nothing to load.
	writeFile(t, path, goodMap, base.Add(1*time.Second))
	quiet("touched file")
	if h.Current() != first {
		t.Fatal("touching the file replaced the map")
	}

	// Garbage: reported once, the old map stays.
	writeFile(t, path, "{not json", base.Add(2*time.Second))
	r := next("garbage")
	if r.err == nil || r.m != nil || !strings.Contains(r.err.Error(), "invalid JSON") {
		t.Fatalf("garbage: got %+v", r)
	}
	if h.Current() != first {
		t.Fatal("garbage replaced the map")
	}
	quiet("garbage seen already")

	// A bad map is refused the same way.
	writeFile(t, path, badMap, base.Add(3*time.Second))
	if r := next("bad map"); r.err == nil || !strings.Contains(r.err.Error(), `n3 -> "gone"`) {
		t.Fatalf("bad map: got %+v", r)
	}
	if h.Current() != first {
		t.Fatal("a bad map replaced the map")
	}

	// A good change is picked up.
	writeFile(t, path, goodMap2, base.Add(4*time.Second))
	r = next("good change")
	if r.err != nil || r.m == nil || r.m.Route("n2").Kind != Mine || h.Current() != r.m {
		t.Fatalf("good change: got %+v", r)
	}

	// A vanished file is reported once and keeps the map.
	cur := h.Current()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if r := next("removed"); !errors.Is(r.err, fs.ErrNotExist) {
		t.Fatalf("removed: got %+v", r)
	}
	quiet("still removed")
	if h.Current() != cur {
		t.Fatal("a missing file replaced the map")
	}

	// Back again with the content already loaded: nothing to do.
	writeFile(t, path, goodMap2, base.Add(5*time.Second))
	quiet("restored")
}

func TestHolderWatchStops(t *testing.T) {
	h := NewHolder("root", discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Watch(ctx, filepath.Join(t.TempDir(), "missing.json"), time.Millisecond, nil)
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

func TestHolderConcurrentReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes.json")
	writeFile(t, path, goodMap, time.Now())
	h := NewHolder("root", discard())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		go func() {
			for ctx.Err() == nil {
				m := h.Current()
				_ = m.Route("n1")
				_ = m.Below()
			}
		}()
	}
	for i := range 20 {
		data := goodMap
		if i%2 == 1 {
			data = goodMap2
		}
		writeFile(t, path, data, time.Now().Add(time.Duration(i)*time.Second))
		if _, err := h.LoadFile(path); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHolderBeforeInstall checks the hook runs for every map that parsed, while the previous map
// is still current, and never for a refused file.
func TestHolderBeforeInstall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes.json")
	h := NewHolder("root", discard())
	var seen []string
	h.BeforeInstall(func(m *Map) {
		if h.Current() == m {
			t.Error("BeforeInstall ran after the map became current")
		}
		seen = append(seen, m.Digest())
	})
	writeFile(t, path, goodMap, time.Now())
	first, err := h.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, badMap, time.Now().Add(time.Second))
	if _, err := h.LoadFile(path); err == nil {
		t.Fatal("bad map loaded")
	}
	writeFile(t, path, goodMap2, time.Now().Add(2*time.Second))
	second, err := h.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{first.Digest(), second.Digest()}; !slices.Equal(seen, want) {
		t.Errorf("BeforeInstall saw %q, want %q", seen, want)
	}
}

// TestHolderWatchRefusedTouched touches a refused file bigger than the parser's read-ahead:
// the watcher knows its content (hashed whole though the parse stopped early) and stays quiet.
func TestHolderWatchRefusedTouched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes.json")
	base := time.Now().Add(-time.Hour)
	writeFile(t, path, goodMap, base)
	h := NewHolder("root", discard())
	if _, err := h.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	garbage := `{"a": x` + strings.Repeat(" ", 1<<20) + `}`
	writeFile(t, path, garbage, base.Add(time.Second))
	reports := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Watch(ctx, path, 5*time.Millisecond, func(_ *Map, err error) { reports <- err })
	}()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case err := <-reports:
		if err == nil || !strings.Contains(err.Error(), "invalid JSON") {
			t.Fatalf("garbage: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not report the garbage")
	}
	writeFile(t, path, garbage, base.Add(2*time.Second))
	select {
	case err := <-reports:
		t.Fatalf("touched garbage reported again: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
}
