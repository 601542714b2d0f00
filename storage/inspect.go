package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ErrLocked is returned by Open when another process (a running keel-relay) holds the data
// directory: what is in it can then be read only through that process.
var ErrLocked = errors.New("the data directory is in use by another process (a running keel-relay?)")

// ErrBadJobID is returned for a job id that is not one Job.ID could have given.
var ErrBadJobID = errors.New("bad job id: want the decimal number `queue ls` shows")

// ListJobs calls fn for each queued forward job, in due order (the order the worker takes
// them), until fn returns false.
func (s *Store) ListJobs(fn func(Job) bool) error {
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixJob), PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().Key()
			var job Job
			err := it.Item().Value(func(b []byte) error {
				var err error
				job, err = decodeJob(key, b)
				return err
			})
			if err != nil {
				return err
			}
			if !fn(job) {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: list jobs: %w", err)
	}
	return nil
}

// QueueSummary is what the operator's status says of the forward queue.
type QueueSummary struct {
	Jobs  int64
	Bytes int64
	// OldestQueued is when the job queued longest ago was queued (zero: empty queue).
	OldestQueued time.Time
	// LastError is the error of the job whose failed attempt is the latest (its due time is
	// the furthest, since a failure moves a job to the end of its backoff), and LastErrorJob
	// its id; both empty when no queued job has failed.
	LastError, LastErrorJob string
}

// SummarizeQueue reads the whole queue once (bounded by Options.MaxJobs) for QueueSummary.
func (s *Store) SummarizeQueue() (QueueSummary, error) {
	var sum QueueSummary
	var lastDue time.Time
	err := s.ListJobs(func(j Job) bool {
		sum.Jobs++
		sum.Bytes += j.Size
		if sum.OldestQueued.IsZero() || j.Queued.Before(sum.OldestQueued) {
			sum.OldestQueued = j.Queued
		}
		if j.LastError != "" && !j.Due.Before(lastDue) {
			lastDue, sum.LastError, sum.LastErrorJob = j.Due, j.LastError, j.ID()
		}
		return true
	})
	return sum, err
}

// jobSeq parses a job id (Job.ID).
func jobSeq(id string) (uint64, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil || seq == 0 || strconv.FormatUint(seq, 10) != id {
		return 0, fmt.Errorf("%q: %w", id, ErrBadJobID)
	}
	return seq, nil
}

// findJob returns the job whose id is seq, scanning the queue's keys; ErrNotFound when
// there is none.
func findJob(txn *badger.Txn, seq uint64) (Job, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixJob), PrefetchValues: false})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		key := it.Item().Key()
		if len(key) == len(prefixJob)+16 && binary.BigEndian.Uint64(key[len(prefixJob)+8:]) == seq {
			return getJob(txn, it.Item().KeyCopy(nil))
		}
	}
	return Job{}, fmt.Errorf("storage: job %d: %w", seq, ErrNotFound)
}

// FindJob returns the queued job whose id (Job.ID) is id, or ErrNotFound.
func (s *Store) FindJob(id string) (Job, error) {
	seq, err := jobSeq(id)
	if err != nil {
		return Job{}, err
	}
	var job Job
	err = s.db.View(func(txn *badger.Txn) error {
		job, err = findJob(txn, seq)
		return err
	})
	return job, err
}

// RetryJob makes the queued job id due at now (its attempts and last error kept), for the
// worker to try it at once instead of at the end of its backoff. It returns the job as
// moved, or ErrNotFound. A delivery of the job already under way finds it moved and leaves
// it queued: it is then delivered again.
func (s *Store) RetryJob(id string, now time.Time) (Job, error) {
	seq, err := jobSeq(id)
	if err != nil {
		return Job{}, err
	}
	s.jobMu.Lock()
	defer s.jobMu.Unlock()
	var next Job
	// A move, like RescheduleJob: exempt from the reserve.
	err = s.reclaim(func(txn *badger.Txn) error {
		cur, err := findJob(txn, seq)
		if err != nil {
			return err
		}
		next = cur
		next.Due = now
		next.key = jobKey(now.UnixNano(), seq)
		return moveJob(txn, cur, next)
	})
	if err != nil {
		return Job{}, fmt.Errorf("storage: retry job %s: %w", id, err)
	}
	return next, s.syncIfDurable()
}

// DropJob removes the queued job id without delivering it (its content goes to the
// sweeper) and returns it, or ErrNotFound.
func (s *Store) DropJob(id string) (Job, error) {
	seq, err := jobSeq(id)
	if err != nil {
		return Job{}, err
	}
	s.jobMu.Lock()
	var dropped Job
	err = s.reclaim(func(txn *badger.Txn) error {
		cur, err := findJob(txn, seq)
		if err != nil {
			return err
		}
		dropped = cur
		return dropJob(txn, cur)
	})
	if err == nil {
		s.jobs.Add(-1)
	}
	s.jobMu.Unlock()
	if err != nil {
		return Job{}, fmt.Errorf("storage: drop job %s: %w", id, err)
	}
	return dropped, s.syncIfDurable()
}
