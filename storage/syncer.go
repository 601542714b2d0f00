package storage

import (
	"sync"
	"sync/atomic"
	"time"
)

// syncer is group commit: it shares one fsync among the acknowledgement points that need one
// at the same time, so that 16 concurrent PUTs cost a few fsyncs, not 16, and each is still
// answered only once its own data is durable.
//
// The rule (leader/follower): a caller whose write has returned needs a sync that STARTED
// after that write, since a sync already in flight may have missed it. One sync runs at a
// time. A caller arriving while none runs starts one (it leads) and returns its result. A
// caller arriving while one runs (it follows) joins the next round, which starts as soon as
// the running one ends and covers every follower that arrived meanwhile; the leader that
// ends a round hands the next one to a new goroutine, so no caller runs syncs for others
// after its own is done. A round's error goes to every caller of that round, and only them.
//
// Before a round starts, it lingers while writes are being committed (writing), at most
// maxLinger: those writers will want a sync in a moment, and one sync for all of them is
// fewer fsyncs and, above all, fewer rewrites of the logs' last, partly filled pages (each
// fsync writes them again: on flash storage, that is wear). A lone writer never waits.
type syncer struct {
	fn func() error
	// writing counts the commits in progress (Store.commit).
	writing atomic.Int64

	mu      sync.Mutex
	running *syncRound // the sync in flight, nil when none
	next    *syncRound // the round the callers that arrived during running wait for
}

// syncRound is one call of fn and the callers waiting for it.
type syncRound struct {
	done chan struct{} // closed when fn returned; err is set before
	err  error
}

func newSyncer(fn func() error) *syncer { return &syncer{fn: fn} }

// maxLinger is the longest a sync waits for the commits in progress to join it; lingerStep
// how often it looks.
const (
	maxLinger  = time.Millisecond
	lingerStep = 50 * time.Microsecond
)

// committing counts a commit in progress until the returned function is called.
func (s *syncer) committing() (done func()) {
	s.writing.Add(1)
	return func() { s.writing.Add(-1) }
}

// linger waits, at most maxLinger, until no commit is in progress.
func (s *syncer) linger() {
	if s.writing.Load() == 0 {
		return
	}
	deadline := time.Now().Add(maxLinger)
	for s.writing.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(lingerStep)
	}
}

// sync returns once a call of fn that started after sync was called has returned, with that
// call's error.
func (s *syncer) sync() error {
	s.mu.Lock()
	if s.running == nil {
		r := &syncRound{done: make(chan struct{})}
		s.running = r
		s.mu.Unlock()
		s.run(r)
		return r.err
	}
	if s.next == nil {
		s.next = &syncRound{done: make(chan struct{})}
	}
	r := s.next
	s.mu.Unlock()
	<-r.done
	return r.err
}

// run performs round r (which is s.running), then starts the round waiting behind it, if any.
func (s *syncer) run(r *syncRound) {
	s.linger()
	r.err = s.fn()
	close(r.done)
	s.mu.Lock()
	next := s.next
	s.running, s.next = next, nil
	s.mu.Unlock()
	if next != nil {
		go s.run(next)
	}
}
