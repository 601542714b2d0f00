package storage

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSyncerCoversEveryCaller checks the group-commit rule under concurrency: every caller
// returns only after a sync that started after it was called, and concurrent callers share
// syncs.
func TestSyncerCoversEveryCaller(t *testing.T) {
	var (
		written  atomic.Int64 // a "write" counter: callers bump it before they sync
		durable  atomic.Int64 // what the last finished sync covered
		inFlight atomic.Int32
		syncs    atomic.Int64
	)
	s := newSyncer(func() error {
		if inFlight.Add(1) != 1 {
			t.Error("two syncs at once")
		}
		covered := written.Load() // what this sync covers: the writes done before it started
		time.Sleep(200 * time.Microsecond)
		durable.Store(max(durable.Load(), covered))
		inFlight.Add(-1)
		syncs.Add(1)
		return nil
	})
	const callers, rounds = 32, 100
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				mine := written.Add(1)
				if err := s.sync(); err != nil {
					t.Error(err)
					return
				}
				if d := durable.Load(); d < mine {
					t.Errorf("sync returned with write %d not covered (durable up to %d)", mine, d)
					return
				}
			}
		}()
	}
	wg.Wait()
	n := syncs.Load()
	t.Logf("%d syncs for %d calls", n, callers*rounds)
	if n >= callers*rounds {
		t.Errorf("%d syncs for %d calls: none shared", n, callers*rounds)
	}
}

// TestSyncerErrors checks that a round's error goes to its callers only, and that a caller
// arriving during a sync waits for the next one.
func TestSyncerErrors(t *testing.T) {
	boom := errors.New("boom")
	release := make(chan struct{})
	started := make(chan int, 4)
	var call atomic.Int32
	s := newSyncer(func() error {
		n := int(call.Add(1))
		started <- n
		if n == 1 {
			<-release
			return nil
		}
		return boom
	})
	first := make(chan error)
	go func() { first <- s.sync() }()
	if n := <-started; n != 1 {
		t.Fatalf("first sync is call %d", n)
	}
	// A follower arriving while sync 1 runs must get sync 2 (which fails), not sync 1.
	second := make(chan error)
	go func() { second <- s.sync() }()
	time.Sleep(10 * time.Millisecond) // let it join the next round
	select {
	case err := <-second:
		t.Fatalf("follower returned %v before its sync started", err)
	default:
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("leader: %v, want nil", err)
	}
	if n := <-started; n != 2 {
		t.Fatalf("second sync is call %d", n)
	}
	if err := <-second; !errors.Is(err, boom) {
		t.Errorf("follower: %v, want boom", err)
	}
	if err := s.sync(); !errors.Is(err, boom) {
		t.Errorf("third: %v, want boom", err)
	}
	<-started
}

// TestSyncerLingers checks that a sync waits for a commit in progress (bounded by maxLinger)
// and that a lone caller does not wait.
func TestSyncerLingers(t *testing.T) {
	var syncs atomic.Int64
	s := newSyncer(func() error { syncs.Add(1); return nil })

	start := time.Now()
	if err := s.sync(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= maxLinger {
		t.Errorf("a lone sync took %s: it lingered", d)
	}

	// A commit in progress that never ends: the sync waits maxLinger, then goes.
	done := s.committing()
	start = time.Now()
	if err := s.sync(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < maxLinger {
		t.Errorf("the sync took %s with a commit in progress: want at least %s", d, maxLinger)
	}
	done()

	// A commit that ends soon joins the same round as the caller already waiting.
	done = s.committing()
	go func() { time.Sleep(maxLinger / 4); done() }()
	before := syncs.Load()
	if err := s.sync(); err != nil {
		t.Fatal(err)
	}
	if got := syncs.Load() - before; got != 1 {
		t.Errorf("%d syncs, want 1", got)
	}
}
