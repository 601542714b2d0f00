package server

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/keel-relay/keel/storage"
)

// errUnchanged skips a write that would change nothing.
var errUnchanged = errors.New("unchanged")

// flushLoop writes last-seen times and capabilities every flush_interval until ctx ends.
func (s *Server) flushLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.flush()
		}
	}
}

// flush writes the dirty last-seen times (in batches) and capabilities (one row each, tags
// untouched). What fails stays dirty for the next flush.
func (s *Server) flush() {
	if seen := s.seen.TakeDirty(); len(seen) > 0 {
		if err := s.store.FlushLastSeen(seen); err != nil {
			s.m.flushErr.Inc()
			s.log.Error("flush last-seen times", "daemons", len(seen), "err", err)
			s.seen.Restore(seen)
		}
	}
	s.mu.Lock()
	caps := s.caps
	s.caps = make(map[string][]byte)
	s.mu.Unlock()
	for node, b := range caps {
		err := s.store.UpdateDaemon(node, func(d *storage.Daemon) error {
			if bytes.Equal(d.Capabilities, b) {
				return errUnchanged
			}
			d.Capabilities = b
			return nil
		})
		if err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, errUnchanged) {
			s.m.flushErr.Inc()
			s.log.Error("store capabilities", "node", node, "err", err)
			s.mu.Lock()
			if _, newer := s.caps[node]; !newer {
				s.caps[node] = b
			}
			s.mu.Unlock()
		}
	}
}
