package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Job is a queued forward of a shared file to the next hop.
type Job struct {
	// File names the shared file; Header is its signature block as the relay forwards it
	// (the source's lines, with the relay's hash_value and expires; see FileMeta.Header).
	File   FileKey
	Header []byte
	// NextHop is the node id of the sub-relay to deliver to, or "" for the upstream.
	NextHop string
	Size    int64
	Expires time.Time
	// Due is when the next attempt may start; Attempts counts the attempts made so far;
	// LastError is why the last one failed.
	Due       time.Time
	Attempts  int
	LastError string
	Queued    time.Time

	key    []byte
	upload uint64
	chunks uint32
}

// ID returns a stable identifier of the job in the queue, for logs.
func (j Job) ID() string {
	if len(j.key) != len(prefixJob)+16 {
		return "?"
	}
	return fmt.Sprintf("%d", binary.BigEndian.Uint64(j.key[len(prefixJob)+8:]))
}

// jobRecord is a Job's stored form in version 1 (JSON), still read; encodeJob writes
// version 2 (record.go).
type jobRecord struct {
	V         int    `json:"v"`
	File      string `json:"file"`
	Header    []byte `json:"header"`
	NextHop   string `json:"next_hop,omitempty"`
	Size      int64  `json:"size"`
	Expires   int64  `json:"expires"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
	Queued    int64  `json:"queued"`
	Upload    uint64 `json:"upload"`
	Chunks    uint32 `json:"chunks"`
}

// encodeJob returns j's record (version 2): file, header, next hop, size, expires (Unix
// seconds), attempts, last error, queued (Unix milliseconds), upload, chunks. The due time
// is in the key.
func encodeJob(j Job) ([]byte, error) {
	file := j.File.String()
	w := newRecord(len(file) + len(j.Header) + len(j.NextHop) + len(j.LastError))
	w.string(file)
	w.bytes(j.Header)
	w.string(j.NextHop)
	w.int(j.Size)
	w.int(j.Expires.Unix())
	w.int(int64(j.Attempts))
	w.string(j.LastError)
	w.int(j.Queued.UnixMilli())
	w.uint(j.upload)
	w.uint(uint64(j.chunks))
	return w.b, nil
}

// decodeJob reads the record of version 2 or 1 stored under key.
func decodeJob(key, b []byte) (Job, error) {
	if len(key) != len(prefixJob)+16 {
		return Job{}, fmt.Errorf("storage: job %x: bad key", key)
	}
	var r jobRecord
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &r); err != nil {
			return Job{}, fmt.Errorf("storage: job %x: corrupt record: %w", key, err)
		}
		if r.V != 1 {
			return Job{}, fmt.Errorf("storage: job %x: unknown record version %d", key, r.V)
		}
	} else {
		rd := readRecord(b)
		r = jobRecord{File: rd.string(), Header: rd.bytes(), NextHop: rd.string(), Size: rd.int(),
			Expires: rd.int(), Attempts: int(rd.int()), LastError: rd.string(), Queued: rd.int()}
		upload, chunks := rd.uint(), rd.uint()
		if err := rd.done(); err != nil {
			return Job{}, fmt.Errorf("storage: job %x: corrupt record: %w", key, err)
		}
		if chunks > 1<<32-1 {
			return Job{}, fmt.Errorf("storage: job %x: corrupt record: %d chunks", key, chunks)
		}
		r.Upload, r.Chunks = upload, uint32(chunks)
	}
	if r.Size < 0 {
		return Job{}, fmt.Errorf("storage: job %x: corrupt record: size %d", key, r.Size)
	}
	fk, ok := parseFileKey(r.File)
	if !ok {
		return Job{}, fmt.Errorf("storage: job %x: bad file key %q", key, r.File)
	}
	due := int64(binary.BigEndian.Uint64(key[len(prefixJob):]))
	return Job{
		File: fk, Header: r.Header, NextHop: r.NextHop, Size: r.Size, Expires: time.Unix(r.Expires, 0),
		Due: time.Unix(0, due), Attempts: r.Attempts, LastError: r.LastError, Queued: time.UnixMilli(r.Queued),
		key: append([]byte(nil), key...), upload: r.Upload, chunks: r.Chunks,
	}, nil
}

// Enqueue makes the upload a forward job, durable when it returns nil (with SyncWrites).
// A job already queued for the same file is superseded: only the newest content is
// delivered. It fails with ErrQueueFull when the queue is at its bound.
func (s *Store) Enqueue(u *Upload, job Job) error {
	if err := u.finish(); err != nil {
		u.Abort()
		return err
	}
	// jobMu serialises the queue's transactions (none conflicts with another) and keeps
	// the job count exact; the fsync after it is shared with other callers (syncer).
	s.jobMu.Lock()
	superseded, err := s.enqueue(u, &job)
	if err == nil && !superseded {
		s.jobs.Add(1)
	}
	s.jobMu.Unlock()
	if err != nil {
		u.Abort()
		return fmt.Errorf("storage: queue %s: %w", job.File, err)
	}
	u.release()
	return s.syncIfDurable()
}

// enqueue commits job (its key set from a fresh sequence number) with the upload's content
// staged; jobMu is held. It reports whether the job superseded a queued copy.
func (s *Store) enqueue(u *Upload, job *Job) (superseded bool, err error) {
	seq, err := s.nextUploadID()
	if err != nil {
		return false, err
	}
	if job.Due.IsZero() {
		job.Due = time.Now()
	}
	if job.Queued.IsZero() {
		job.Queued = time.Now()
	}
	job.key = jobKey(job.Due.UnixNano(), seq)
	err = s.updateSized(u.staged()+int64(len(job.Header)), func(txn *badger.Txn) error {
		superseded = false
		chunks, err := u.stage(txn)
		if err != nil {
			return err
		}
		job.upload, job.chunks, job.Size = u.id, chunks, u.size
		val, err := encodeJob(*job)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		idx := jobFileKey(job.File)
		item, err := txn.Get(idx)
		switch {
		case err == nil:
			oldKey, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			old, err := getJob(txn, oldKey)
			if err == nil {
				if err := dropJob(txn, old); err != nil {
					return err
				}
				superseded = true
			} else if !errors.Is(err, ErrNotFound) {
				return err
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		// The bound counts files: a new version of a queued file takes no new place.
		if !superseded && s.opts.MaxJobs > 0 && s.jobs.Load() >= int64(s.opts.MaxJobs) {
			return fmt.Errorf("%d jobs queued: %w", s.jobs.Load(), ErrQueueFull)
		}
		if err := txn.Set(job.key, val); err != nil {
			return err
		}
		return txn.Set(idx, job.key)
	})
	return superseded, err
}

// moveJob replaces the queued job cur by next, stored under next.key (another due time),
// and points the file's index at it.
func moveJob(txn *badger.Txn, cur, next Job) error {
	val, err := encodeJob(next)
	if err != nil {
		return err
	}
	if err := txn.Delete(cur.key); err != nil {
		return err
	}
	if err := txn.Set(next.key, val); err != nil {
		return err
	}
	return txn.Set(jobFileKey(next.File), next.key)
}

func getJob(txn *badger.Txn, key []byte) (Job, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Job{}, fmt.Errorf("storage: job %x: %w", key, ErrNotFound)
	}
	if err != nil {
		return Job{}, err
	}
	var job Job
	err = item.Value(func(b []byte) error {
		job, err = decodeJob(key, b)
		return err
	})
	return job, err
}

// dropJob deletes a job and hands its chunks to the sweeper.
func dropJob(txn *badger.Txn, job Job) error {
	if err := txn.Delete(job.key); err != nil {
		return err
	}
	if err := txn.Set(orphanKey(job.upload), nil); err != nil {
		return err
	}
	idx := jobFileKey(job.File)
	item, err := txn.Get(idx)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return item.Value(func(cur []byte) error {
		if string(cur) == string(job.key) {
			return txn.Delete(idx)
		}
		return nil
	})
}

// DueJobs returns up to limit jobs due at or before now, oldest first, skipping those for
// which skip returns true (jobs already being delivered).
func (s *Store) DueJobs(now time.Time, limit int, skip func(Job) bool) ([]Job, error) {
	var jobs []Job
	end := jobKey(now.UnixNano(), ^uint64(0))
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixJob)})
		defer it.Close()
		for it.Rewind(); it.Valid() && len(jobs) < limit; it.Next() {
			key := it.Item().Key()
			if string(key) > string(end) {
				break
			}
			var job Job
			err := it.Item().Value(func(b []byte) error {
				var err error
				job, err = decodeJob(key, b)
				return err
			})
			if err != nil {
				return err
			}
			if skip != nil && skip(job) {
				continue
			}
			jobs = append(jobs, job)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: due jobs: %w", err)
	}
	return jobs, nil
}

// NextDue returns when the earliest queued job is due, or false when the queue is empty.
func (s *Store) NextDue() (time.Time, bool, error) {
	var due time.Time
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixJob), PrefetchValues: false})
		defer it.Close()
		it.Rewind()
		if it.Valid() {
			key := it.Item().Key()
			due = time.Unix(0, int64(binary.BigEndian.Uint64(key[len(prefixJob):])))
			found = true
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("storage: next due job: %w", err)
	}
	return due, found, nil
}

// OpenJob returns a reader of a job's content. The reader must be closed. It fails with
// ErrNotFound when the job was completed or superseded meanwhile.
func (s *Store) OpenJob(job Job) (io.ReadCloser, error) {
	txn := s.db.NewTransaction(false)
	if _, err := getJob(txn, job.key); err != nil {
		txn.Discard()
		return nil, err
	}
	return newChunkReader(txn, job.upload, job.chunks, job.Size), nil
}

// CompleteJob removes a delivered (or definitively refused, or expired) job. A job that is
// already gone is not an error.
func (s *Store) CompleteJob(job Job) error {
	s.jobMu.Lock()
	removed := false
	err := s.reclaim(func(txn *badger.Txn) error {
		removed = false
		cur, err := getJob(txn, job.key)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		removed = true
		return dropJob(txn, cur)
	})
	if err == nil && removed {
		s.jobs.Add(-1)
	}
	s.jobMu.Unlock()
	if err != nil {
		return fmt.Errorf("storage: complete job %s for %s: %w", job.ID(), job.File, err)
	}
	return s.syncIfDurable()
}

// RescheduleJob records a failed attempt and moves the job to due. It returns the updated
// job; a job superseded or completed meanwhile yields ErrNotFound.
func (s *Store) RescheduleJob(job Job, due time.Time, lastErr string) (Job, error) {
	s.jobMu.Lock()
	defer s.jobMu.Unlock()
	var next Job
	// A move, not growth: the record is written under its new key and deleted under the
	// old one in one transaction. Held to the reserve, it would fail on a full disk and
	// leave the job due at once, for the worker to retry in a loop.
	err := s.reclaim(func(txn *badger.Txn) error {
		cur, err := getJob(txn, job.key)
		if err != nil {
			return err
		}
		next = cur
		next.Attempts++
		next.LastError = lastErr
		next.Due = due
		next.key = jobKey(due.UnixNano(), binary.BigEndian.Uint64(cur.key[len(prefixJob)+8:]))
		return moveJob(txn, cur, next)
	})
	if err != nil {
		return Job{}, fmt.Errorf("storage: reschedule job %s for %s: %w", job.ID(), job.File, err)
	}
	return next, nil
}

// JobCount returns the number of queued jobs.
func (s *Store) JobCount() int64 { return s.jobs.Load() }

// OldestQueued returns when the job waiting longest in the forward queue was queued, or
// false when the queue is empty. It reads every job record: call it from a periodic
// refresh, not on a request path.
func (s *Store) OldestQueued() (time.Time, bool, error) {
	var oldest time.Time
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixJob)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().Key()
			err := it.Item().Value(func(b []byte) error {
				job, err := decodeJob(key, b)
				if err != nil {
					return err
				}
				if !found || job.Queued.Before(oldest) {
					oldest, found = job.Queued, true
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("storage: oldest queued job: %w", err)
	}
	return oldest, found, nil
}
