package storage

// The free-space guard.
//
// Badger writes its value log, its memtable WAL files, its level tables and its discard
// statistics through memory maps. A write into a mapped page that the file system cannot back
// is not an error: it is a SIGBUS, and it kills the process. A store that died that way dies
// again at its next open, which replays the WAL files, flushes them into level-0 tables and
// resumes the compactions that were running, all through memory maps. So the store keeps the
// disk from filling up under the engine:
//
//   - A growing write (every transaction that adds data: chunks, file and job records,
//     challenges, daemon rows, enrolments, blacklist entries, nonces, the node map, the upload
//     id lease, the signing-key copy) is refused with ErrNoSpace when it would leave less free
//     than the reserve (reserveFor, or Options.MinFreeSpace if that is more).
//   - A freeing write (deletes by the cleaner, TakeChallenge, a delivered job, the orphan
//     sweep, value-log GC) is held only to a floor, so a full store can still free space and
//     leave that state by itself.
//   - A ballast file (BallastFile in the data directory, with real blocks) holds back what
//     the engine needs to open read-write and to work without growing writes. It is deleted
//     when the disk is nearly full (at open, or when another process fills the disk while the
//     store runs), which gives the engine room, and recreated when space comes back. While it
//     is missing (or smaller than it should be), growing writes need the difference on top of
//     the reserve: the store accepts data again only once it could rebuild its ballast.
//
// Where free space is unknown (a platform without statfs) nothing is refused and there is no
// ballast: writes fail on their own if they must.

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/table"

	"github.com/keel-relay/keel/internal/fsutil"
)

// BallastFile is the name of the ballast in the data directory.
const BallastFile = "disk-reserve"

const (
	// engineSlack covers what the engine writes besides tables and logs: the discard
	// statistics (a 1 MiB mapped file, doubled when full), the headers of a new WAL and
	// value-log file, appends to MANIFEST and KEYREGISTRY.
	engineSlack = 2 << 20
	// ballastStep is the granularity of the ballast's size: it is grown when it lacks a
	// step or more, so a store whose tables grow by a few KiB does not touch the file at
	// every write.
	ballastStep = 1 << 20
	// spaceInterval is how often the store re-reads the free space and its tables' size,
	// and adjusts the ballast.
	spaceInterval = time.Second
	// pageSize is the granularity of the ballast's allocations.
	pageSize = 4 << 10
	// lsmStale is how old the tables' size may be when a growing write is checked: a flood
	// of small records grows the tables by a memtable at a time, and the reserve must
	// follow before the writes take what it should keep.
	lsmStale = 50 * time.Millisecond
)

// headroom is what the engine may write without a growing transaction of ours: flushing
// every memtable (the current one and up to NumMemtables immutable ones; also at open,
// replaying the WAL files a crash left, and at close) into a level-0 table before its WAL
// file is deleted, plus engineSlack.
func headroom(o Options) int64 { return int64(o.NumMemtables+1)*o.MemTableSize + engineSlack }

// floorFor is the least free space a freeing transaction needs: the WAL pages of its
// tombstones and, should it fill the memtable, one flush.
func floorFor(o Options) int64 { return o.MemTableSize + engineSlack }

// reserveFor is the automatic reserve (storage.min_free_space: auto), and the least the
// reserve can be: once the store's own writes stop there, everything the engine still writes
// by itself fits:
//   - one value-log file (ValueLogFileSize): GC rewrites the live half of a file at the head
//     of the log before it deletes the file, and the head runs past its size by a batch
//     before the next file starts;
//   - the headroom: memtable flushes, discard statistics, headers;
//   - the level tables (lsm bytes, the memtables' WAL files included): a compaction writes
//     its output tables before it deletes its inputs, and the inputs of the compactions
//     running at once are at most every table.
func reserveFor(o Options, lsm int64) int64 { return o.ValueLogFileSize + headroom(o) + lsm }

// openNeed is the free space a read-write open needs: the WAL files left by a crash are
// flushed, and the compactions they trigger (or that a crash interrupted) run, at once.
//
// Measured on a 64 MiB tmpfs (1 MiB memtables, 4 MiB value-log files), killing a store with
// SIGKILL in the middle of a flood of small records (about 11 MiB of tables and WAL files),
// then filling the disk: the open and its compactions needed between 2 and 12 MiB; this
// formula gave 13 to 18 MiB, and no open crashed with that much free.
func openNeed(o Options, lsm int64) int64 { return headroom(o) + lsm }

// ballastFor is the ballast's size: what an open needs, rounded up to a step, and one step
// more, so that a ballast topped up a step at a time (topUpBallast) always holds what an open
// needs.
func ballastFor(o Options, lsm int64) int64 {
	return roundUp(openNeed(o, lsm), ballastStep) + ballastStep
}

func roundUp(n, step int64) int64 { return (n + step - 1) / step * step }

// Space is the store's view of the free space of its data directory.
type Space struct {
	// Dir is the data directory.
	Dir string
	// Free is the space available in Dir's file system (-1: unknown on this platform).
	Free int64
	// Need is what a growing write must leave free: the reserve, plus what the ballast
	// lacks of its size. Below it growing writes are refused with ErrNoSpace.
	Need int64
	// Reserve is the reserve alone: Options.MinFreeSpace, or its automatic value if that
	// is more.
	Reserve int64
	// Ballast is the space the ballast file holds now; BallastSize the size it should
	// have (0 when the file system cannot hold one).
	Ballast, BallastSize int64
}

// Known reports whether the free space could be measured.
func (sp Space) Known() bool { return sp.Free >= 0 }

// Full reports whether growing writes are refused.
func (sp Space) Full() bool { return sp.Known() && sp.Free < sp.Need }

// Reason says why writes are refused ("" when they are not), without naming the directory
// (it is shown to clients).
func (sp Space) Reason() string {
	if !sp.Full() {
		return ""
	}
	return fmt.Sprintf("disk full: %d bytes free, need %d", sp.Free, sp.Need)
}

// writeKind says what a write does to the size of the store.
type writeKind int

const (
	// grows: the write adds data; it is held to the reserve.
	grows writeKind = iota
	// frees: the write deletes data (its tombstones take a few bytes until compaction
	// drops them and what they delete); it is held only to the floor.
	frees
)

// spaceGuard is the store's free-space state.
type spaceGuard struct {
	o     Options
	floor int64
	// fixed is the reserve asked for (Options.MinFreeSpace, or SetMinFreeSpace; 0: none):
	// the reserve is the larger of it and reserveFor.
	fixed atomic.Int64
	// lsm is the size of the level tables and WAL files, measured by refreshLSM at lsmAt
	// (Unix ns); lsmSince counts the bytes of small values committed since (they are in
	// the WAL files, but in the next measure only).
	lsm, lsmAt, lsmSince atomic.Int64
	lsmMu                sync.Mutex
	// pending counts the bytes of growing writes admitted and not yet committed: two
	// uploads admitted at once must not both count the same free bytes.
	pending atomic.Int64
	ballast ballast
	// topUpMu lets one writer at a time grow the ballast (topUpBallast).
	topUpMu sync.Mutex
	// full is the state last logged by refresh.
	full atomic.Bool
}

// tables is the best estimate of the size of the level tables and WAL files now.
func (g *spaceGuard) tables() int64 { return g.lsm.Load() + g.lsmSince.Load() }

func (g *spaceGuard) reserve() int64 { return max(g.fixed.Load(), reserveFor(g.o, g.tables())) }

// ballastSize is the size the ballast should have now (0 when there is none).
func (g *spaceGuard) ballastSize() int64 {
	if g.ballast.disabled.Load() {
		return 0
	}
	return ballastFor(g.o, g.tables())
}

// need is what a growing write must leave free now.
func (g *spaceGuard) need() int64 {
	return g.reserve() + max(0, g.ballastSize()-g.ballast.held.Load())
}

// freshLSM re-reads the size of the level tables if it is older than lsmStale (one caller
// at a time; the others use the value they find).
func (g *spaceGuard) freshLSM() {
	if time.Now().UnixNano()-g.lsmAt.Load() < int64(lsmStale) || !g.lsmMu.TryLock() {
		return
	}
	defer g.lsmMu.Unlock()
	g.refreshLSM()
}

// refreshLSM re-reads the size of the level tables, and of the memtables' WAL files, which
// become level-0 tables when they are flushed: measuring only the tables would let the
// reserve and the ballast jump by a memtable at each flush, after the writes it holds took
// the room.
func (g *spaceGuard) refreshLSM() { g.measureLSM(nil) }

// measureLSM is refreshLSM counting, when live is not nil, only the tables it names.
func (g *spaceGuard) measureLSM(live map[string]bool) {
	defer g.lsmAt.Store(time.Now().UnixNano())
	// Writes committed from now on may or may not be in this measure: counting them again
	// is the safe side.
	since := g.lsmSince.Load()
	entries, err := os.ReadDir(g.o.Dir)
	if err != nil {
		return
	}
	var n int64
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".mem"):
		case strings.HasSuffix(name, ".sst") && (live == nil || live[name]):
		default:
			continue
		}
		if info, err := e.Info(); err == nil {
			n += diskBytes(info)
		}
	}
	g.lsm.Store(n)
	g.lsmSince.Add(-since)
}

// liveTables returns the file names of the tables the MANIFEST in dir lists, or nil when it
// cannot be read. Before an open, the other tables are the output of a compaction a crash
// interrupted: the open deletes them, so they need no room.
func liveTables(dir string) map[string]bool {
	f, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if err != nil {
		return nil
	}
	defer f.Close()
	m, _, err := badger.ReplayManifestFile(f, 0, badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		return nil
	}
	live := make(map[string]bool, len(m.Tables))
	for id := range m.Tables {
		live[table.IDToFilename(id)] = true
	}
	return live
}

// space returns the current state, measuring the free space.
func (s *Store) space() Space {
	g := &s.guard
	free, err := s.freeSpace(s.opts.Dir)
	if err != nil || free < 0 {
		free = -1
	}
	return Space{
		Dir: s.opts.Dir, Free: free, Need: g.need(), Reserve: g.reserve(),
		Ballast: g.ballast.held.Load(), BallastSize: g.ballastSize(),
	}
}

// Space returns the free-space state of the data directory, as of now.
func (s *Store) Space() Space { return s.space() }

// SetMinFreeSpace changes Options.MinFreeSpace (n <= 0: the automatic reserve alone) while
// the store runs, and returns the state it leaves.
func (s *Store) SetMinFreeSpace(n int64) Space {
	s.guard.fixed.Store(max(n, 0))
	return s.refresh()
}

// admit checks a write of kind k adding about need bytes against the free space. A growing
// write that fits is counted as pending until the returned function is called (after its
// commit). Unknown free space admits everything.
func (s *Store) admit(k writeKind, need int64) (func(), error) {
	noop := func() {}
	g := &s.guard
	free, err := s.freeSpace(s.opts.Dir)
	if err != nil || free < 0 {
		return noop, nil
	}
	if k == frees {
		if free < g.floor && s.releaseBallast("a delete needs room") {
			if free, err = s.freeSpace(s.opts.Dir); err != nil || free < 0 {
				return noop, nil
			}
		}
		if free < g.floor {
			return noop, fmt.Errorf("disk full: %d bytes free in %s, need %d even to delete: %w",
				free, s.opts.Dir, g.floor, ErrNoSpace)
		}
		return noop, nil
	}
	g.freshLSM()
	if s.topUpBallast(free) {
		if free, err = s.freeSpace(s.opts.Dir); err != nil || free < 0 {
			return noop, nil
		}
	}
	charge, small := need, need < g.o.ValueThreshold
	if small {
		// Small values live in the level tables, and every byte there grows the reserve and
		// the ballast by as much again (reserveFor, openNeed): the write must leave room
		// for both.
		charge = 3 * need
	}
	pending := g.pending.Add(charge)
	if want := g.need(); free-pending < want {
		g.pending.Add(-charge)
		return noop, fmt.Errorf("disk full: %d bytes free in %s, need %d (%d for this write, %d in flight, %d kept for the storage engine): %w",
			free, s.opts.Dir, want+pending, charge, pending-charge, want, ErrNoSpace)
	}
	return func() {
		if small {
			g.lsmSince.Add(need)
		}
		g.pending.Add(-charge)
	}, nil
}

// topUpBallast grows the ballast when it lacks a step or more and the free space above the
// reserve has it (growing writes leave that much free for it): a flood of small records grows
// the tables, and with them the ballast's size, faster than refresh runs, and a relay killed
// at the end of the flood must find its ballast whole. One caller at a time; the others go on.
// It reports whether it tried (the free space changed then).
func (s *Store) topUpBallast(free int64) bool {
	g := &s.guard
	size := g.ballastSize()
	room := free - g.pending.Load() - g.reserve()
	if size-g.ballast.held.Load() < ballastStep || room < ballastStep || !g.topUpMu.TryLock() {
		return false
	}
	defer g.topUpMu.Unlock()
	s.resizeBallast(size, room)
	return true
}

// checkSpace fails with ErrNoSpace when writing need more bytes would leave less free than a
// growing write needs. It admits nothing: it is a pre-check (an upload of known size).
func (s *Store) checkSpace(need int64) error {
	done, err := s.admit(grows, need)
	done()
	return err
}

// refresh re-reads the tables' size and the free space, releases the ballast when the disk is
// nearly full, tops it up when there is room, and logs when growing writes start or stop
// being refused. It returns the state it leaves.
func (s *Store) refresh() Space {
	g := &s.guard
	g.refreshLSM()
	sp := s.space()
	if !sp.Known() {
		return sp
	}
	switch {
	case sp.Free < g.floor:
		if s.releaseBallast("the disk is nearly full") {
			sp = s.space()
		}
	case sp.Ballast < sp.BallastSize && sp.Free-g.pending.Load() > sp.Reserve:
		// Growing writes keep what the ballast lacks free on top of the reserve: turn what
		// there is of it into ballast, which another process cannot take.
		s.resizeBallast(sp.BallastSize, sp.Free-g.pending.Load()-sp.Reserve)
		sp = s.space()
	case sp.Ballast > 2*sp.BallastSize+ballastStep:
		// The tables shrank by half (not a compaction's passing peak): give back the
		// difference.
		s.resizeBallast(sp.BallastSize, 0)
		sp = s.space()
	}
	if full := sp.Full(); full != g.full.Swap(full) {
		if full {
			s.log.Error("disk full: writes are refused until space is freed; reads go on",
				"free", sp.Free, "need", sp.Need, "reserve", sp.Reserve, "ballast", sp.Ballast, "dir", sp.Dir)
		} else {
			s.log.Info("disk space is back: writes are accepted again",
				"free", sp.Free, "need", sp.Need, "ballast", sp.Ballast, "dir", sp.Dir)
		}
	}
	return sp
}

// watchSpace calls refresh every spaceInterval until stop is closed.
func (s *Store) watchSpace(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(spaceInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.refresh()
		}
	}
}

// releaseBallast deletes the ballast, if there is one, and reports whether it did.
func (s *Store) releaseBallast(why string) bool {
	n, err := s.guard.ballast.release()
	if err != nil {
		s.log.Error("cannot release the disk ballast", "path", s.guard.ballast.path, "err", err)
		return false
	}
	if n > 0 {
		s.log.Warn("released the disk ballast to give the storage engine room: "+why,
			"bytes", n, "path", s.guard.ballast.path)
	}
	return n > 0
}

// resizeBallast brings the ballast towards size, growing it by room at most, and logs what it
// could not do.
func (s *Store) resizeBallast(size, room int64) {
	b := &s.guard.ballast
	before := b.held.Load()
	err := b.resize(size, room)
	switch {
	case errors.Is(err, syscall.ENOSPC):
		// Taken meanwhile; the next refresh tries again.
	case err != nil:
		s.log.Warn("the data directory cannot hold a disk ballast; a full disk at start-up may keep the relay from opening its store",
			"path", b.path, "err", err)
	case before < size && b.held.Load() == size:
		s.log.Info("disk ballast in place", "bytes", size, "path", b.path)
	}
}

// ballast is a file with real blocks, held to be deleted when the engine needs room.
type ballast struct {
	path string
	mu   sync.Mutex
	// held is the space the file holds.
	held atomic.Int64
	// disabled is set when the file system cannot hold one (or free space is unknown).
	disabled atomic.Bool
}

// load takes stock of a ballast left by a previous run.
func (b *ballast) load() {
	b.mu.Lock()
	defer b.mu.Unlock()
	info, err := os.Stat(b.path)
	if err != nil {
		b.held.Store(0)
		return
	}
	b.held.Store(diskBytes(info))
}

// release deletes the file and returns the space it held.
func (b *ballast) release() (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.held.Load()
	if err := os.Remove(b.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	b.held.Store(0)
	return n, nil
}

// resize truncates the file to target, or grows it towards target by room at most (whole
// pages). On failure the file keeps (or goes back to) what it held; an error
// other than ENOSPC disables the ballast.
func (b *ballast) resize(target, room int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	held := b.held.Load()
	if target > held {
		target = min(target, held+room/pageSize*pageSize)
	}
	if b.disabled.Load() || target == held {
		return nil
	}
	f, err := os.OpenFile(b.path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return b.disable(err)
	}
	err = setSize(f, held, target)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// Give back a partial allocation.
		if held == 0 {
			_ = os.Remove(b.path)
		} else {
			_ = os.Truncate(b.path, held)
		}
		if errors.Is(err, syscall.ENOSPC) {
			return err
		}
		return b.disable(err)
	}
	b.held.Store(target)
	_ = fsutil.SyncDir(filepath.Dir(b.path)) // best effort: the ballast is only a reserve
	return nil
}

func (b *ballast) disable(err error) error {
	b.disabled.Store(true)
	return fmt.Errorf("disk ballast %s: %w", b.path, err)
}

// setSize makes f hold exactly size bytes of real blocks, from held. Growing uses
// fallocate where the platform has it, else writes random bytes (zeros could be compressed
// or deduplicated away by the file system).
func setSize(f *os.File, held, size int64) error {
	if size <= held {
		return f.Truncate(size)
	}
	if err := fallocate(f, size); err == nil {
		return nil
	} else if errors.Is(err, syscall.ENOSPC) {
		return err
	}
	if _, err := f.Seek(held, io.SeekStart); err != nil {
		return err
	}
	var seed [32]byte
	rng := rand.NewChaCha8(seed)
	_, err := io.CopyN(f, rng, size-held)
	return err
}
