// Package storage is Keel's embedded store: one Badger database holding the node map, shared
// files (metadata and chunked content), their TTL index, the store-and-forward queue, the
// agents' uploads waiting for delivery upstream and the edge daemons' durable state
// (enrolments, keys, tokens, challenges).
//
// It is the only package that imports Badger. Everything it exposes is typed: callers never see
// keys or transactions. Acknowledgement points (a file committed, a forward job queued, an
// agent's upload kept) are synced to disk before they return when Options.SyncWrites is set.
// A write that adds data is refused with ErrNoSpace rather than let the disk fill up under
// Badger's memory maps, and a ballast file lets the store open on a full disk (space.go).
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

// ErrQueueFull is returned by Enqueue when the forward queue holds Options.MaxJobs jobs, and
// by PutAgentUpload when the store keeps Options.MaxAgentUploads agents' uploads.
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
	// MaxAgentUploads bounds the agents' uploads kept, waiting or failed (0: no bound).
	MaxAgentUploads int
	// MinFreeSpace is the free space writes must leave in the data directory, or fail with
	// ErrNoSpace (space.go). The store never keeps less than what its engine may still write
	// by itself (worked out from the options above and the size of its tables): 0 means
	// that, and a smaller value is raised to it.
	MinFreeSpace int64

	// freeSpace, when set, replaces how the store measures free space (tests).
	freeSpace func(dir string) (int64, error)
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
		ValueThreshold:   512,
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

	// chunkPool lends chunk buffers to uploads larger than a chunk (files.go).
	chunkPool chunkPool

	files atomic.Int64
	jobs  atomic.Int64

	// jobMu serialises queue mutations so the job counter and the MaxJobs bound are exact.
	jobMu sync.Mutex

	// agentMu serialises the changes of agents' uploads, so that agentCounts (per kind) and
	// the MaxAgentUploads bound are exact (agentuploads.go).
	agentMu     sync.Mutex
	agentCounts map[string]*agentKindCount

	// writeMu is held for reading by every write, and for writing by the garbage collector
	// while it flushes (Badger fails the writes made during DropPrefix with ErrBlockedWrites)
	// and rewrites a value-log file (see rewriteValueLog): writes wait instead.
	writeMu sync.RWMutex

	// guard is the free-space state (space.go); watchSpace refreshes it until stopSpace
	// is closed, then closes spaceDone.
	guard                spaceGuard
	stopSpace, spaceDone chan struct{}

	// freeSpaceFn measures the free space of a directory (freeSpace; tests replace it).
	freeSpaceFn atomic.Pointer[func(dir string) (int64, error)]

	// syncs shares fsyncs among concurrent acknowledgement points (group commit, syncer.go).
	syncs *syncer
	// advice keeps read-ahead off the logs Badger appends to (logadvice.go).
	advice *logAdvice

	// keys serialises the read-modify-write transactions of one record (a file, a queued
	// file), so that they never conflict with each other (keylocks.go).
	keys keyLocks
}

// freeSpace measures the free space of dir's file system (-1: unknown).
func (s *Store) freeSpace(dir string) (int64, error) { return (*s.freeSpaceFn.Load())(dir) }

// setFreeSpace replaces how the store measures free space (tests simulate a full disk).
func (s *Store) setFreeSpace(fn func(dir string) (int64, error)) { s.freeSpaceFn.Store(&fn) }

// Open opens (or creates) the store in opts.Dir. Only one process may hold it at a time.
//
// On a disk too full for the storage engine to open read-write (see openNeed), it deletes
// the ballast first; if that is not enough, it fails with ErrNoSpace and touches nothing.
// A store opened on a full disk refuses growing writes until space comes back (Space).
func Open(opts Options, log *slog.Logger) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("storage: empty data directory")
	}
	if opts.ChunkSize <= 0 {
		return nil, fmt.Errorf("storage: chunk size %d must be positive", opts.ChunkSize)
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("storage: create data directory: %w", err)
	}
	s := &Store{opts: opts, log: log, chunkPool: chunkPool{size: opts.ChunkSize}}
	s.syncs = newSyncer(s.syncNow)
	s.advice = newLogAdvice(opts.Dir)
	if opts.freeSpace != nil {
		s.setFreeSpace(opts.freeSpace)
	} else {
		s.setFreeSpace(freeSpace)
	}
	if err := s.roomToOpen(); err != nil {
		return nil, err
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
	s.db = db
	s.advice.refresh(true)
	s.seq, err = db.GetSequence([]byte(keySeqUpload), 256)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("storage: upload sequence: %w", err)
	}
	if err := s.countRecords(); err != nil {
		_ = s.Close()
		return nil, err
	}
	s.refresh() // builds the ballast when there is room; says so when the disk is full
	s.stopSpace, s.spaceDone = make(chan struct{}), make(chan struct{})
	go s.watchSpace(s.stopSpace, s.spaceDone)
	return s, nil
}

// initGuard sets up the free-space guard before the engine opens: options, the ballast left
// by a previous run, the size of the tables the open keeps.
func (s *Store) initGuard() {
	g := &s.guard
	g.o, g.floor = s.opts, floorFor(s.opts)
	g.fixed.Store(max(s.opts.MinFreeSpace, 0))
	g.ballast.path = filepath.Join(s.opts.Dir, BallastFile)
	g.ballast.load()
	g.measureLSM(liveTables(s.opts.Dir))
}

// roomToOpen makes sure the storage engine can open read-write without writing into pages
// the file system cannot back, deleting the ballast if need be. It sets up the guard.
func (s *Store) roomToOpen() error {
	s.initGuard()
	g := &s.guard
	free, err := s.freeSpace(s.opts.Dir)
	if err != nil || free < 0 {
		// No measure, no ballast: it could be neither sized nor released in time.
		g.ballast.disabled.Store(true)
		return nil
	}
	need := openNeed(s.opts, g.lsm.Load())
	if free < need && s.releaseBallast(fmt.Sprintf("%d bytes free, the store needs %d to open", free, need)) {
		if free, err = s.freeSpace(s.opts.Dir); err != nil {
			return nil
		}
	}
	if free < need {
		return noRoomToOpen(s.opts.Dir, free, need)
	}
	return nil
}

func noRoomToOpen(dir string, free, need int64) error {
	return fmt.Errorf("storage: disk full: %d bytes free in %s, need %d to open the store (its engine would crash writing into memory-mapped files); free some space: %w",
		free, dir, need, ErrNoSpace)
}

// CheckOpen reports whether Open would find the room its engine needs in opts.Dir: the free
// space (the ballast Open would delete included; -1: unknown), what an open needs, and nil or
// an error wrapping ErrNoSpace. It changes nothing on disk: a relay whose store could not
// open calls it until space comes back.
func CheckOpen(opts Options) (free, need int64, err error) {
	s := &Store{opts: opts}
	s.setFreeSpace(freeSpace)
	if opts.freeSpace != nil {
		s.setFreeSpace(opts.freeSpace)
	}
	s.initGuard()
	need = openNeed(opts, s.guard.lsm.Load())
	if free, err = s.freeSpace(opts.Dir); err != nil || free < 0 {
		return -1, need, nil
	}
	free += s.guard.ballast.held.Load()
	if free < need {
		return free, need, noRoomToOpen(opts.Dir, free, need)
	}
	return free, need, nil
}

// Close releases the store. Uploads in progress are abandoned (their chunks are swept on the
// next start).
func (s *Store) Close() error {
	if s.stopSpace != nil {
		close(s.stopSpace)
		<-s.spaceDone
		s.stopSpace = nil
	}
	// Closing flushes the memtable into a table: give the engine the ballast's room if the
	// disk has less than that left.
	if free, err := s.freeSpace(s.opts.Dir); err == nil && free >= 0 && free < headroom(s.opts) {
		s.releaseBallast("closing the store flushes its memtable")
	}
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

// Sync flushes Badger's write-ahead log and value log to disk: everything written before it
// was called is durable when it returns nil. Concurrent calls share their fsyncs (syncer).
func (s *Store) Sync() error { return s.syncs.sync() }

// syncNow is one fsync of Badger's logs.
func (s *Store) syncNow() error {
	s.advice.refresh(false)
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("storage: sync: %w", err)
	}
	return nil
}

// syncIfDurable syncs when the store is configured to acknowledge only durable writes. The
// fsync is shared with the concurrent callers (group commit, syncer.go).
func (s *Store) syncIfDurable() error {
	if !s.opts.SyncWrites {
		return nil
	}
	return s.Sync()
}

// DiskUsage returns the bytes the store's files occupy on disk (the ballast is not the
// store's: it is reported by Space).
func (s *Store) DiskUsage() (int64, error) {
	var total int64
	err := filepath.WalkDir(s.opts.Dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // a file removed by compaction or GC while we walk
			}
			return err
		}
		if d.IsDir() || d.Name() == BallastFile {
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
// live data fell below a quarter (gcDiscardRatio), until none is left or ctx is done, and
// returns how many it rewrote. The value-log file being written to is never rewritten, so
// while it is the only one there is nothing to do, and CollectGarbage does not even flush:
// on flash storage every flush and compaction is wear.
//
// Badger learns how much of a value-log file is dead only when compaction drops the deleted
// versions of its keys; deletes still in the memtable are invisible to value-log GC, and a
// quiet relay can go days without filling a memtable. So CollectGarbage first flushes the
// memtable and compacts level 0 (flushDeletes). Writes wait while it flushes and while
// it rewrites a file, a fraction of a second each.
//
// GC frees space, so it is not held to the reserve; but it writes before it frees (the live
// part of a file, a flush, a compaction), so it does not start without the room for that
// (roomForGC), and fails with ErrNoSpace then.
func (s *Store) CollectGarbage(ctx context.Context) (int, error) {
	if n, err := s.valueLogFiles(); err == nil && n <= 1 {
		return 0, nil
	}
	if err := s.roomForGC(); err != nil {
		return 0, err
	}
	if err := s.flushDeletes(); err != nil {
		return 0, err
	}
	rewritten := 0
	for ctx.Err() == nil {
		if err := s.roomForGC(); err != nil {
			return rewritten, err
		}
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

// roomForGC fails with ErrNoSpace when the disk lacks what one GC step writes before it frees
// anything: the live part (at most half) of a value-log file rewritten at the head of the log,
// and the flush and compaction that make deletes visible to GC (see reserveFor).
func (s *Store) roomForGC() error {
	free, err := s.freeSpace(s.opts.Dir)
	if err != nil || free < 0 {
		return nil
	}
	need := s.opts.ValueLogFileSize/2 + headroom(s.opts) + s.guard.lsm.Load()
	if free < need {
		return fmt.Errorf("storage: value-log GC: disk full: %d bytes free in %s, need %d to rewrite a file: %w",
			free, s.opts.Dir, need, ErrNoSpace)
	}
	return nil
}

// rewriteValueLog rewrites one value-log file, if one is worth it. Writes wait meanwhile:
// Badger's rewrite reads the memtable's maximum version while its writer updates it
// unsynchronised (DB.MaxVersion against memTable.Put, a data race in badger v4.9.6), and
// a rewrite lasts a fraction of a second.
// gcDiscardRatio is the share of a value-log file that must be dead before GC rewrites it:
// rewriting copies the live rest, so a high ratio trades some disk space for less wear.
// Files mostly expire in the order they were written, so a file that is half dead now is
// usually all dead soon, at no cost.
const gcDiscardRatio = 0.75

// valueLogFiles counts the value-log files in the data directory.
func (s *Store) valueLogFiles() (int, error) {
	entries, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return 0, fmt.Errorf("storage: list data directory: %w", err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".vlog") {
			n++
		}
	}
	return n, nil
}

func (s *Store) rewriteValueLog() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.db.RunValueLogGC(gcDiscardRatio)
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
	// Loading writes the backup's records (as much as its size, or less): the disk must
	// take them and keep the reserve.
	var size int64
	if rs, ok := r.(io.Seeker); ok {
		if end, err := rs.Seek(0, io.SeekEnd); err == nil {
			if _, err := rs.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("storage: restore: rewind backup: %w", err)
			}
			size = end
		}
	}
	if err := s.checkSpace(size); err != nil {
		return fmt.Errorf("storage: restore: %w (nothing was changed)", err)
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
	// Next writes when it renews its lease (a growing write, if a tiny one).
	done, err := s.admit(grows, 0)
	if err != nil {
		return 0, fmt.Errorf("storage: next upload id: %w", err)
	}
	defer done()
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

// countRecords initialises the file, job and agent upload counters.
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
	return s.loadAgentUploads()
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

// update runs fn in a read-write transaction that grows the store (a small one: records, not
// content), retrying on conflicts with a concurrent writer. It fails with ErrNoSpace,
// without running fn, when the disk is at the free-space reserve (space.go). Every write that
// adds data goes through update or updateSized; only reclaim is exempt.
func (s *Store) update(fn func(txn *badger.Txn) error) error { return s.updateSized(0, fn) }

// updateSized is update for a transaction that writes about need bytes (content).
func (s *Store) updateSized(need int64, fn func(txn *badger.Txn) error) error {
	done, err := s.admit(grows, need)
	if err != nil {
		return err
	}
	defer done()
	return s.commit(fn)
}

// reclaim runs fn, a transaction that frees space, like update but exempt from the
// reserve: deletes by the cleaner and the orphan sweep, TakeChallenge, a job's removal
// (CompleteJob) or move (RescheduleJob). A full store must still be able to delete, or it
// could never leave that state. It is held only to the floor below which even a delete
// could crash the engine (space.go), and releases the ballast to stay above it.
func (s *Store) reclaim(fn func(txn *badger.Txn) error) error {
	if _, err := s.admit(frees, 0); err != nil {
		return err
	}
	return s.commit(fn)
}

// commit runs fn in a read-write transaction, retrying on conflicts with a concurrent writer.
func (s *Store) commit(fn func(txn *badger.Txn) error) error {
	s.writeMu.RLock()
	defer s.writeMu.RUnlock()
	defer s.syncs.committing()()
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
