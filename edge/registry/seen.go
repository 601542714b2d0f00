package registry

import (
	"maps"
	"sync"
	"time"
)

// Seen keeps the time each node was last heard from. Times are written to the store in
// batches (TakeDirty), not on every heartbeat.
type Seen struct {
	mu    sync.Mutex
	last  map[string]time.Time
	dirty map[string]time.Time
}

// NewSeen returns an empty tracker.
func NewSeen() *Seen {
	return &Seen{last: make(map[string]time.Time), dirty: make(map[string]time.Time)}
}

// Touch records that node was heard from at t (an older t is ignored).
func (s *Seen) Touch(node string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.last[node]; ok && !t.After(prev) {
		return
	}
	s.last[node] = t
	s.dirty[node] = t
}

// Get returns when node was last heard from since the relay started.
func (s *Seen) Get(node string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.last[node]
	return t, ok
}

// TakeDirty returns the times touched since the last call and forgets them; Restore puts
// them back when writing them failed.
func (s *Seen) TakeDirty() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dirty) == 0 {
		return nil
	}
	d := s.dirty
	s.dirty = make(map[string]time.Time)
	return d
}

// Restore marks times as dirty again (after a failed flush), unless newer ones arrived.
func (s *Seen) Restore(d map[string]time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for node, t := range d {
		if cur, ok := s.dirty[node]; !ok || t.After(cur) {
			s.dirty[node] = t
		}
	}
}

// Forget drops a node (revoked or deleted).
func (s *Seen) Forget(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.last, node)
	delete(s.dirty, node)
}

// Snapshot returns a copy of every last-seen time.
func (s *Seen) Snapshot() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.last)
}
