package storage

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// enqueueTest queues a job of n bytes for k, due at due.
func enqueueTest(t *testing.T, s *Store, k FileKey, n int, due time.Time) {
	t.Helper()
	u, err := s.NewUpload(int64(n))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(u, Job{File: k, Header: []byte("h"), Expires: time.Now().Add(time.Hour), Due: due}); err != nil {
		t.Fatal(err)
	}
}

func listJobs(t *testing.T, s *Store) []Job {
	t.Helper()
	var jobs []Job
	if err := s.ListJobs(func(j Job) bool { jobs = append(jobs, j); return true }); err != nil {
		t.Fatal(err)
	}
	return jobs
}

// TestListRetryDropJobs: the queue listed in due order, a job retried now (moved first, its
// attempts kept), another dropped (gone after a reopen, its content swept).
func TestListRetryDropJobs(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	now := time.Now()
	enqueueTest(t, s, FileKey{"a", "src", "late"}, 100, now.Add(time.Hour))
	enqueueTest(t, s, FileKey{"a", "src", "soon"}, 200, now.Add(time.Minute))
	enqueueTest(t, s, FileKey{"b", "src", "failing"}, 300, now)
	jobs := listJobs(t, s)
	if len(jobs) != 3 || jobs[0].File.ID != "failing" || jobs[2].File.ID != "late" {
		t.Fatalf("ListJobs = %v, want failing, soon, late", jobs)
	}
	if _, err := s.RescheduleJob(jobs[0], now.Add(2*time.Hour), "upstream answered 503"); err != nil {
		t.Fatal(err)
	}
	sum, err := s.SummarizeQueue()
	if err != nil || sum.Jobs != 3 || sum.Bytes != 600 || sum.LastError != "upstream answered 503" ||
		sum.LastErrorJob != jobs[0].ID() || sum.OldestQueued.After(jobs[1].Queued) {
		t.Fatalf("SummarizeQueue = %+v, %v", sum, err)
	}
	late := jobs[2].ID()
	if f, err := s.FindJob(late); err != nil || f.File.ID != "late" {
		t.Fatalf("FindJob(%s) = %+v, %v", late, f, err)
	}
	moved, err := s.RetryJob(jobs[0].ID(), now.Add(-time.Second))
	if err != nil || moved.Attempts != 1 || moved.ID() != jobs[0].ID() {
		t.Fatalf("RetryJob = %+v, %v", moved, err)
	}
	if due, err := s.DueJobs(now, 10, nil); err != nil || len(due) != 1 || due[0].File.ID != "failing" || due[0].LastError == "" {
		t.Fatalf("due after retry = %v, %v", due, err)
	}
	dropped, err := s.DropJob(late)
	if err != nil || dropped.File.ID != "late" || s.JobCount() != 2 {
		t.Fatalf("DropJob = %+v, %v (count %d)", dropped, err, s.JobCount())
	}
	if _, err := s.DropJob(late); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DropJob: %v, want ErrNotFound", err)
	}
	if _, err := s.RetryJob(late, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("RetryJob of a dropped job: %v, want ErrNotFound", err)
	}
	// A new version of the dropped file queues as a new job (its index entry went too).
	enqueueTest(t, s, FileKey{"a", "src", "late"}, 50, now.Add(time.Hour))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	defer s.Close()
	if s.JobCount() != 3 {
		t.Errorf("JobCount after reopen = %d, want 3", s.JobCount())
	}
	ids := map[string]int64{}
	for _, j := range listJobs(t, s) {
		ids[j.File.ID] = j.Size
	}
	if len(ids) != 3 || ids["late"] != 50 {
		t.Errorf("jobs after reopen = %v", ids)
	}
}

// TestJobIDRefusals: ids that are not Job.ID's are refused as such, before any lookup.
func TestJobIDRefusals(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	for _, id := range []string{"", "0", "-1", "01", "1x", "+1", " 1", "18446744073709551616", "abc"} {
		if _, err := s.FindJob(id); !errors.Is(err, ErrBadJobID) {
			t.Errorf("FindJob(%q) = %v, want ErrBadJobID", id, err)
		}
		if _, err := s.RetryJob(id, time.Now()); !errors.Is(err, ErrBadJobID) {
			t.Errorf("RetryJob(%q) = %v, want ErrBadJobID", id, err)
		}
		if _, err := s.DropJob(id); !errors.Is(err, ErrBadJobID) {
			t.Errorf("DropJob(%q) = %v, want ErrBadJobID", id, err)
		}
	}
	if _, err := s.FindJob("12345"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FindJob of no job: %v, want ErrNotFound", err)
	}
}

// TestOpenLockedIsErrLocked: a store held by another Store (as by a running relay) fails to
// open with ErrLocked, which the inspection commands recognise.
func TestOpenLockedIsErrLocked(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	defer s.Close()
	_, err := Open(testOptions(dir), testLogger(t))
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open: %v, want ErrLocked naming %s", err, dir)
	}
}

// FuzzJobID: an id is accepted only in the form Job.ID writes, and names that number.
func FuzzJobID(f *testing.F) {
	for _, s := range []string{"1", "0", "01", "18446744073709551615", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		seq, err := jobSeq(id)
		if err != nil {
			return
		}
		if got := (Job{key: jobKey(0, seq)}).ID(); got != id {
			t.Fatalf("jobSeq(%q) = %d, whose ID is %q", id, seq, got)
		}
	})
}

// BenchmarkSummarizeQueue reads a queue of 10,000 jobs (a tenth of the default bound) as
// `keel-relay status` does.
func BenchmarkSummarizeQueue(b *testing.B) {
	s, err := Open(testOptions(b.TempDir(), func(o *Options) { o.SyncWrites = false }), testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for i := range 10_000 {
		u, err := s.NewUpload(16)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = u.Write(make([]byte, 16))
		if err := s.Enqueue(u, Job{File: FileKey{"t", "s", strconv.Itoa(i)}, Header: []byte("h"), Expires: now.Add(time.Hour),
			Due: now.Add(time.Duration(i) * time.Millisecond), LastError: "dial tcp: connection refused"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		sum, err := s.SummarizeQueue()
		if err != nil || sum.Jobs != 10_000 {
			b.Fatalf("%+v %v", sum, err)
		}
	}
}
