package storage

import (
	"hash/maphash"
	"slices"
	"sync"
)

// keyLocks is a striped lock on record keys. The transactions that read a record and write it
// back (committing, replacing, deleting or expiring a file) hold its stripe, so that two of
// them never run at once on the same record: Badger would fail one with ErrConflict, and
// under steady contention (16 clients re-sending the same file) a bounded retry loses now
// and then. Different records mostly take different stripes and go on in parallel.
type keyLocks struct {
	seed    maphash.Seed
	once    sync.Once
	stripes [256]sync.Mutex
}

func (l *keyLocks) stripe(key []byte) int {
	l.once.Do(func() { l.seed = maphash.MakeSeed() })
	return int(maphash.Bytes(l.seed, key) % uint64(len(l.stripes)))
}

// lock locks the stripes of keys, in stripe order (no deadlock between two callers), and
// returns the unlock.
func (l *keyLocks) lock(keys ...[]byte) func() {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, l.stripe(k))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		l.stripes[i].Lock()
	}
	return func() {
		for _, i := range idx {
			l.stripes[i].Unlock()
		}
	}
}
