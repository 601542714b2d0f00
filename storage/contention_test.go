package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// TestSameFileConcurrently commits one file id from 16 goroutines at once, with and without
// the cleaners (expiry, orphan sweep, value-log GC) running: no commit fails, and in the end
// the record, its content, its expiry index and the file count agree.
func TestSameFileConcurrently(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cleaner bool
	}{{"alone", false}, {"with cleaner", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, t.TempDir())
			defer s.Close()
			const workers, commits = 16, 40
			k, other := FileKey{"t", "s", "same"}, FileKey{"t", "s", "other"}
			header := sigHeader(t)
			ctx, stop := context.WithCancel(context.Background())
			var cleaners sync.WaitGroup
			if tc.cleaner {
				cleaners.Add(1)
				go func() {
					defer cleaners.Done()
					for ctx.Err() == nil {
						if _, err := s.ExpireFiles(time.Now(), 0); err != nil {
							t.Errorf("ExpireFiles: %v", err)
						}
						if _, err := s.SweepOrphans(ctx); err != nil && ctx.Err() == nil {
							t.Errorf("SweepOrphans: %v", err)
						}
						if _, err := s.CollectGarbage(ctx); err != nil && ctx.Err() == nil {
							t.Errorf("CollectGarbage: %v", err)
						}
					}
				}()
			}
			err := parallel(workers, workers*commits, func(i int) error {
				content := fmt.Appendf(nil, "version %d %s", i, bytes.Repeat([]byte{'x'}, i%5000))
				expires := time.Now().Add(time.Hour)
				if tc.cleaner && i%3 == 0 {
					expires = time.Now().Add(-time.Second) // the cleaner's prey
				}
				key := k
				if i%7 == 0 {
					key = other
				}
				sum := sha256.Sum256(content)
				u, err := s.NewUpload(int64(len(content)))
				if err != nil {
					return err
				}
				if _, err := u.Write(content); err != nil {
					return err
				}
				return s.CommitFile(u, FileMeta{Key: key, Header: header, Algorithm: "sha256",
					Hash: hex.EncodeToString(sum[:]), Expires: expires, Stored: time.Now()})
			})
			stop()
			cleaners.Wait()
			if err != nil {
				t.Fatalf("a concurrent commit failed: %v", err)
			}
			want := int64(0)
			for _, fk := range []FileKey{k, other} {
				meta, r, err := s.OpenFile(fk)
				if err != nil {
					if tc.cleaner {
						continue // expired last
					}
					t.Fatalf("OpenFile %s: %v", fk, err)
				}
				want++
				content, err := io.ReadAll(r)
				r.Close()
				if err != nil {
					t.Fatal(err)
				}
				if sum := sha256.Sum256(content); hex.EncodeToString(sum[:]) != meta.Hash || int64(len(content)) != meta.Size {
					t.Errorf("%s: content does not match its record", fk)
				}
				if !bytes.Equal(meta.Header, header) {
					t.Errorf("%s: header differs", fk)
				}
			}
			if got := s.FileCount(); got != want {
				t.Errorf("FileCount = %d, want %d", got, want)
			}
			if n := countKeys(t, s, prefixFile); int64(n) != want {
				t.Errorf("%d file records, want %d", n, want)
			}
			if n := countKeys(t, s, prefixTTL); int64(n) != want {
				t.Errorf("%d expiry index entries, want %d", n, want)
			}
			// Every replaced version is an orphan: the sweep leaves only live content.
			if _, err := s.SweepOrphans(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := countChunks(t, s); int64(n) != want {
				t.Errorf("%d chunks after the sweep, want %d", n, want)
			}
		})
	}
}

// TestSameJobConcurrently queues one file from 16 goroutines at once, while completed jobs
// are removed: no call fails, and one job is left.
func TestSameJobConcurrently(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	k := FileKey{"t", "s", "same"}
	err := parallel(16, 320, func(i int) error {
		content := fmt.Appendf(nil, "version %d", i)
		u, err := s.NewUpload(int64(len(content)))
		if err != nil {
			return err
		}
		if _, err := u.Write(content); err != nil {
			return err
		}
		if err := s.Enqueue(u, Job{File: k, Header: []byte("h"), Expires: time.Now().Add(time.Hour)}); err != nil {
			return err
		}
		if i%5 == 0 {
			jobs, err := s.DueJobs(time.Now().Add(time.Hour), 10, nil)
			if err != nil {
				return err
			}
			for _, j := range jobs {
				if err := s.CompleteJob(j); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("a concurrent enqueue failed: %v", err)
	}
	jobs, err := s.DueJobs(time.Now().Add(time.Hour), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(jobs)) != s.JobCount() || len(jobs) > 1 {
		t.Errorf("%d jobs due, JobCount %d; want at most one, and the same", len(jobs), s.JobCount())
	}
}
