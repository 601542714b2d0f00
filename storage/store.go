// Package storage is Keel's embedded store: one Badger database holding the node map, shared
// files (metadata and chunked content), their TTL index, the store-and-forward queue and the
// edge daemons' durable state (enrolments, keys, tokens, challenges).
//
// It is the only package that imports Badger. Everything it exposes is typed: callers never see
// keys or transactions. Acknowledgement points (a file committed, a forward job queued) are
// synced to disk before they return when Options.SyncWrites is set.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// ErrNotFound is returned when a file, job or record does not exist.
var ErrNotFound = errors.New("not found")

// ErrQueueFull is returned by Enqueue when the forward queue holds Options.MaxJobs jobs.
var ErrQueueFull = errors.New("forward queue is full")

// ErrNoSpace is returned when the data directory has too little free space to accept a write.
var ErrNoSpace = errors.New("not enough free disk space")

// Options tunes the store. The zero value is not usable; start from DefaultOptions.
type Options struct {
	// Dir is the data directory; it is created if missing.
	Dir string
	// MemTableSize, NumMemtables, BlockCacheSize, IndexCacheSize, ValueLogFileSize,
	// ValueThreshold and NumCompactors are passed to Badger.
	MemTableSize     int64
	NumMemtables     int
	BlockCacheSize   int64
	IndexCacheSize   int64
	ValueLogFileSize int64
	ValueThreshold   int64
	NumCompactors    int
	// ChunkSize is the size of one content chunk: the most an upload buffers in memory.
	ChunkSize int
	// SyncWrites makes every acknowledgement point fsync the logs before it returns.
	SyncWrites bool
	// MaxJobs bounds the forward queue.
	MaxJobs int
	// MinFreeSpace is the free space the data directory must keep; writes that would go
	// below it fail with ErrNoSpace. 0 means 2×ValueLogFileSize.
	MinFreeSpace int64
}

// DefaultOptions returns options suited to a small box (a few tens of MiB of RAM for Badger).
func DefaultOptions(dir string) Options {
	return Options{
		Dir:              dir,
		MemTableSize:     8 << 20,
		NumMemtables:     2,
		BlockCacheSize:   8 << 20,
		IndexCacheSize:   4 << 20,
		ValueLogFileSize: 64 << 20,
		ValueThreshold:   4 << 10,
		NumCompactors:    2,
		ChunkSize:        256 << 10,
		SyncWrites:       true,
		MaxJobs:          100000,
	}
}

// Store is an open Keel store. It is safe for concurrent use.
type Store struct {
	db   *badger.DB
	opts Options
	log  *slog.Logger
	seq  *badger.Sequence

	seqMu sync.Mutex

	// active holds the ids of uploads in progress in this process; the orphan sweeper
	// leaves their chunks alone.
	active sync.Map // uint64 -> struct{}

	files atomic.Int64
	jobs  atomic.Int64

	// jobMu serialises queue mutations so the job counter and the MaxJobs bound are exact.
	jobMu sync.Mutex

	// challengeMu serialises PutChallenge so the bound on pending challenges is exact.
	challengeMu sync.Mutex

	// writeMu is held for reading by every write, and for writing by the garbage collector
	// while it flushes (Badger fails the writes made during DropPrefix with ErrBlockedWrites)
	// and rewrites a value-log file (see rewriteValueLog): writes wait instead.
	writeMu sync.RWMutex

	freeSpace func(dir string) (int64, error)
}

// Open opens (or creates) the store in opts.Dir. Only one process may hold it at a time.
func Open(opts Options, log *slog.Logger) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("storage: empty data directory")
	}
	if opts.ChunkSize <= 0 {
		return nil, fmt.Errorf("storage: chunk size %d must be positive", opts.ChunkSize)
	}
	if opts.MinFreeSpace == 0 {
		opts.MinFreeSpace = 2 * opts.ValueLogFileSize
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("storage: create data directory: %w", err)
	}
	bo := badger.DefaultOptions(opts.Dir).
		WithLogger(badgerLogger{log}).
		WithMemTableSize(opts.MemTableSize).
		WithNumMemtables(opts.NumMemtables).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithIndexCacheSize(opts.IndexCacheSize).
		WithValueLogFileSize(opts.ValueLogFileSize).
		WithValueThreshold(opts.ValueThreshold).
		WithNumCompactors(opts.NumCompactors).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(2 << 20).
		WithCompression(options.None).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		// Keel syncs explicitly at each acknowledgement point instead of on every write:
		// content chunks are written unsynced and made durable by one fsync before the
		// metadata that makes them visible.
		WithSyncWrites(false)
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s (is another keel-relay using it?): %w", opts.Dir, err)
	}
	s := &Store{db: db, opts: opts, log: log, freeSpace: freeSpace}
	s.seq, err = db.GetSequence([]byte(keySeqUpload), 256)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("storage: upload sequence: %w", err)
	}
	if err := s.countRecords(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the store. Uploads in progress are abandoned (their chunks are swept on the
// next start).
func (s *Store) Close() error {
	var errs []error
	if s.seq != nil {
		if err := s.seq.Release(); err != nil {
			errs = append(errs, fmt.Errorf("release sequence: %w", err))
		}
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close badger: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("storage: close: %w", errors.Join(errs...))
	}
	return nil
}

// Options returns the options the store was opened with.
func (s *Store) Options() Options { return s.opts }

// Sync flushes Badger's write-ahead log and value log to disk.
func (s *Store) Sync() error {
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("storage: sync: %w", err)
	}
	return nil
}

// syncIfDurable syncs when the store is configured to acknowledge only durable writes.
func (s *Store) syncIfDurable() error {
	if !s.opts.SyncWrites {
		return nil
	}
	return s.Sync()
}

// checkSpace fails with ErrNoSpace when writing need more bytes would leave less than
// MinFreeSpace free in the data directory.
func (s *Store) checkSpace(need int64) error {
	free, err := s.freeSpace(s.opts.Dir)
	if err != nil || free < 0 {
		return nil // unknown: let the write itself fail if it must
	}
	if free-need < s.opts.MinFreeSpace {
		return fmt.Errorf("storage: %d bytes free in %s, need %d plus a reserve of %d: %w",
			free, s.opts.Dir, need, s.opts.MinFreeSpace, ErrNoSpace)
	}
	return nil
}

// DiskUsage returns the bytes the store's files occupy on disk.
func (s *Store) DiskUsage() (int64, error) {
	var total int64
	err := filepath.WalkDir(s.opts.Dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // a file removed by compaction or GC while we walk
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		total += diskBytes(info)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: disk usage of %s: %w", s.opts.Dir, err)
	}
	return total, nil
}

// CollectGarbage returns the disk space of deleted data: it rewrites value-log files whose
// live data fell below half, until none is left or ctx is done, and returns how many it
// rewrote. The value-log file being written to is never rewritten.
//
// Badger learns how much of a value-log file is dead only when compaction drops the deleted
// versions of its keys; deletes still in the memtable are invisible to value-log GC, and a
// quiet relay can go days without filling a memtable. So CollectGarbage first flushes the
// memtable and compacts level 0 (flushDeletes). Writes wait while it flushes and while
// it rewrites a file, a fraction of a second each.
func (s *Store) CollectGarbage(ctx context.Context) (int, error) {
	if err := s.flushDeletes(); err != nil {
		return 0, err
	}
	rewritten := 0
	for ctx.Err() == nil {
		err := s.rewriteValueLog()
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return rewritten, nil
		}
		if err != nil {
			return rewritten, fmt.Errorf("storage: value-log GC: %w", err)
		}
		rewritten++
	}
	return rewritten, ctx.Err()
}

// rewriteValueLog rewrites one value-log file, if one is worth it. Writes wait meanwhile:
// Badger's rewrite reads the memtable's maximum version while its writer updates it
// unsynchronised (DB.MaxVersion against memTable.Put, a data race in badger v4.9.6), and
// a rewrite lasts a fraction of a second.
func (s *Store) rewriteValueLog() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.db.RunValueLogGC(0.5)
}

// keyGCMarker is written, then dropped at once, by flushDeletes.
const keyGCMarker = "!gc/flush"

// flushDeletes makes Badger flush its memtable to level 0 and compact level 0 into the next
// level, which turns deletes into the discard statistics value-log GC picks files by.
// Badger has no call for that alone; DropPrefix does it, and only when a key with the prefix
// exists: hence a marker key, written for the purpose and dropped. Writes wait meanwhile.
func (s *Store) flushDeletes() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyGCMarker), nil) }); err != nil {
		return fmt.Errorf("storage: write GC marker: %w", err)
	}
	if err := s.db.DropPrefix([]byte(keyGCMarker)); err != nil {
		return fmt.Errorf("storage: flush deletes (drop GC marker): %w", err)
	}
	return nil
}

// Backup writes a full backup of the store to w (Badger's backup format).
func (s *Store) Backup(w io.Writer) error {
	if _, err := s.db.Backup(w, 0); err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	return nil
}

// Empty reports whether the store holds no records at all.
func (s *Store) Empty() (bool, error) {
	empty := true
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := string(it.Item().Key()); k == keySeqUpload || k == keyGCMarker {
				continue
			}
			empty = false
			return nil
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("storage: scan: %w", err)
	}
	return empty, nil
}

// Restore loads a backup written by Backup. With replace, everything in the store is dropped
// first; without it the store must be empty. Input that does not start like a backup is
// refused before anything is dropped.
func (s *Store) Restore(r io.Reader, replace bool) error {
	// When the backup can be read twice, it is verified whole before anything is dropped.
	if rs, ok := r.(io.ReadSeeker); ok && replace {
		if err := VerifyBackup(rs); err != nil {
			return fmt.Errorf("storage: restore: %w (nothing was changed)", err)
		}
		if _, err := rs.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("storage: restore: rewind backup: %w", err)
		}
	}
	backup := &frameChecker{r: r}
	if err := backup.next(); err != nil {
		if errors.Is(err, io.EOF) {
			// A store always holds its upload sequence, so no backup is empty.
			err = errors.New("the backup is empty")
		}
		return fmt.Errorf("storage: restore: %w", err)
	}
	if replace {
		if err := s.seq.Release(); err != nil {
			return fmt.Errorf("storage: restore: release sequence: %w", err)
		}
		if err := s.db.DropAll(); err != nil {
			return fmt.Errorf("storage: restore: drop existing data: %w", err)
		}
	} else {
		empty, err := s.Empty()
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("storage: restore: %s already holds data; restore into an empty data directory or replace it", s.opts.Dir)
		}
		if err := s.seq.Release(); err != nil {
			return fmt.Errorf("storage: restore: release sequence: %w", err)
		}
	}
	if err := s.db.Load(backup, 16); err != nil {
		return fmt.Errorf("storage: restore: %w", err)
	}
	// The backup carries the sequence lease of the store it came from; continuing from it
	// never reuses an upload id of the restored data.
	seq, err := s.db.GetSequence([]byte(keySeqUpload), 256)
	if err != nil {
		return fmt.Errorf("storage: restore: upload sequence: %w", err)
	}
	s.seq = seq
	if err := s.Sync(); err != nil {
		return err
	}
	return s.countRecords()
}

// nextUploadID returns a fresh, never reused upload id (never 0).
func (s *Store) nextUploadID() (uint64, error) {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	// Next writes when it renews its lease.
	s.writeMu.RLock()
	defer s.writeMu.RUnlock()
	for {
		id, err := s.seq.Next()
		if err != nil {
			return 0, fmt.Errorf("storage: next upload id: %w", err)
		}
		if id != 0 {
			return id, nil
		}
	}
}

// countRecords initialises the file and job counters.
func (s *Store) countRecords() error {
	files, err := s.countPrefix([]byte(prefixFile))
	if err != nil {
		return err
	}
	jobs, err := s.countPrefix([]byte(prefixJob))
	if err != nil {
		return err
	}
	s.files.Store(files)
	s.jobs.Store(jobs)
	return nil
}

func (s *Store) countPrefix(prefix []byte) (int64, error) {
	var n int64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: count %q records: %w", prefix, err)
	}
	return n, nil
}

// update runs fn in a read-write transaction, retrying on conflicts with a concurrent writer.
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	s.writeMu.RLock()
	defer s.writeMu.RUnlock()
	for attempt := 0; ; attempt++ {
		err := s.db.Update(fn)
		if !errors.Is(err, badger.ErrConflict) || attempt >= 20 {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * time.Millisecond)
	}
}

// badgerLogger routes Badger's log lines into slog; Badger's info chatter goes to debug.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(f string, a ...any) {
	l.log.Error(trim(fmt.Sprintf(f, a...)), "component", "badger")
}
func (l badgerLogger) Warningf(f string, a ...any) {
	msg := trim(fmt.Sprintf(f, a...))
	if isCacheAdvice(msg) {
		l.log.Debug(msg, "component", "badger")
		return
	}
	l.log.Warn(msg, "component", "badger")
}

// isCacheAdvice reports Badger's once-a-minute advice that a cache is small (with a dump of
// its metrics). Keel's caches are small on purpose (storage.block_cache_size and
// index_cache_size): a large store read at random churns them, which costs reads, not
// correctness, so the advice goes to debug rather than warning every minute.
func isCacheAdvice(msg string) bool {
	return strings.Contains(msg, "cache might be too small") || strings.HasPrefix(msg, "Cache life expectancy")
}
func (l badgerLogger) Infof(f string, a ...any) {
	l.log.Debug(trim(fmt.Sprintf(f, a...)), "component", "badger")
}
func (l badgerLogger) Debugf(f string, a ...any) {
	l.log.Debug(trim(fmt.Sprintf(f, a...)), "component", "badger")
}

func trim(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}
