package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Agents' uploads (SPEC-relay-box.md): inventories and reports that agents PUT, kept until
// they are delivered upstream, or kept aside as failed.
//
// Each kind (a plain string here: "inventories", "inventory-updates", "reports") is a queue
// in arrival order. A waiting upload is stored under u/<kind>/<seq>, a failed one under
// U/<kind>/<seq>, seq a fresh store sequence number taken when it is committed: the first
// key under u/<kind>/ is the oldest waiting upload of the kind (one seek, whatever the
// failed ones). v/<kind>/<name> names the key of the name's kept upload, so that a new
// upload of the same name replaces it. The counters (waiting, failed, waiting bytes, the
// oldest waiting upload per kind) are kept in memory, loaded at Open, and changed only
// under agentMu with the transactions that change the records: they are exact.

// AgentUpload is an agent's upload kept until delivered upstream (or kept aside as failed).
type AgentUpload struct {
	// Kind is the upload's queue (uploadname.Kind.Dir(), a plain string in storage); Name
	// its file name, as the agent sent it.
	Kind, Name string
	Size       int64
	// Received is when it was committed; Due when the next delivery attempt may start.
	Received, Due time.Time
	// Attempts counts the failed delivery attempts; LastError is why the last one failed.
	Attempts  int
	LastError string
	// Failed is set on an upload kept aside (not delivered), for FailReason.
	Failed     bool
	FailReason string

	seq    uint64
	upload uint64
	chunks uint32
}

// ID returns a stable identifier of this version of the upload, for logs.
func (a AgentUpload) ID() string { return strconv.FormatUint(a.seq, 10) }

// AgentUploadStats counts the kept uploads.
type AgentUploadStats struct {
	// Waiting counts the uploads waiting for delivery, WaitingBytes their content; Failed
	// the uploads kept aside.
	Waiting, Failed, WaitingBytes int64
	// OldestWaiting is when the oldest waiting upload was received (zero: none waits).
	OldestWaiting time.Time
}

// maxAgentUploadText bounds a kept LastError or FailReason (longer ones are cut).
const maxAgentUploadText = 1024

// maxAgentUploadName bounds an upload's name (uploadname allows 255 bytes).
const maxAgentUploadName = 1024

// agentKindCount is what the store keeps in memory of one kind's uploads.
type agentKindCount struct {
	waiting, failed, bytes int64
	// headSeq is the sequence number of the oldest waiting upload (0: none waits), head
	// when it was received.
	headSeq uint64
	head    time.Time
}

// agentUploadRecord is what a record holds; the kind, the sequence number and whether the
// upload failed are in its key.
func encodeAgentUpload(a AgentUpload) []byte {
	w := newRecord(len(a.Name) + len(a.LastError) + len(a.FailReason))
	w.string(a.Name)
	w.int(a.Size)
	w.int(a.Received.UnixNano())
	w.int(a.Due.UnixNano())
	w.int(int64(a.Attempts))
	w.string(a.LastError)
	w.string(a.FailReason)
	w.uint(a.upload)
	w.uint(uint64(a.chunks))
	return w.b
}

// decodeAgentUpload reads the record stored under key (version 2 records only).
func decodeAgentUpload(key, b []byte) (AgentUpload, error) {
	kind, seq, failed, ok := parseAgentKey(key)
	if !ok {
		return AgentUpload{}, fmt.Errorf("storage: agent upload %q: bad key", key)
	}
	r := readRecord(b)
	a := AgentUpload{Kind: kind, Failed: failed, seq: seq, Name: r.string(), Size: r.int()}
	received, due, attempts := r.int(), r.int(), r.int()
	a.LastError, a.FailReason = r.string(), r.string()
	upload, chunks := r.uint(), r.uint()
	if err := r.done(); err != nil {
		return AgentUpload{}, fmt.Errorf("storage: agent upload %s/%d: corrupt record: %w", kind, seq, err)
	}
	switch {
	case a.Size < 0, chunks > 1<<32-1, attempts < 0, attempts > 1<<31-1:
		return AgentUpload{}, fmt.Errorf("storage: agent upload %s/%d: corrupt record: size %d, %d chunks, %d attempts",
			kind, seq, a.Size, chunks, attempts)
	case checkAgentUpload(kind, a.Name) != nil:
		return AgentUpload{}, fmt.Errorf("storage: agent upload %s/%d: corrupt record: bad name %q", kind, seq, a.Name)
	}
	a.Received, a.Due, a.Attempts = time.Unix(0, received), time.Unix(0, due), int(attempts)
	a.upload, a.chunks = upload, uint32(chunks)
	return a, nil
}

// checkAgentUpload checks a kind and a name the store can key: the kind not empty and
// without '/', the name not empty and bounded.
func checkAgentUpload(kind, name string) error {
	switch {
	case kind == "" || strings.Contains(kind, "/") || len(kind) > 64:
		return fmt.Errorf("storage: bad agent upload kind %q", kind)
	case name == "" || len(name) > maxAgentUploadName:
		return fmt.Errorf("storage: bad agent upload name (%d bytes)", len(name))
	}
	return nil
}

func agentPrefix(failed bool, kind string) []byte {
	p := prefixAgentWaiting
	if failed {
		p = prefixAgentFailed
	}
	b := make([]byte, 0, len(p)+len(kind)+1+8)
	b = append(b, p...)
	b = append(b, kind...)
	return append(b, '/')
}

func agentKey(failed bool, kind string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(agentPrefix(failed, kind), seq)
}

// key returns where this version of the upload is stored.
func (a AgentUpload) key() []byte { return agentKey(a.Failed, a.Kind, a.seq) }

// parseAgentKey splits u/<kind>/<seq BE8> or U/<kind>/<seq BE8>.
func parseAgentKey(key []byte) (kind string, seq uint64, failed bool, ok bool) {
	const pl = len(prefixAgentWaiting)
	if len(key) < pl+2+8 || key[len(key)-9] != '/' {
		return "", 0, false, false
	}
	switch string(key[:pl]) {
	case prefixAgentWaiting:
	case prefixAgentFailed:
		failed = true
	default:
		return "", 0, false, false
	}
	kind = string(key[pl : len(key)-9])
	if kind == "" || strings.Contains(kind, "/") {
		return "", 0, false, false
	}
	return kind, binary.BigEndian.Uint64(key[len(key)-8:]), failed, true
}

func agentNameKey(kind, name string) []byte {
	b := make([]byte, 0, len(prefixAgentName)+len(kind)+1+len(name))
	b = append(b, prefixAgentName...)
	b = append(b, kind...)
	b = append(b, '/')
	return append(b, name...)
}

func cut(s string) string {
	if len(s) > maxAgentUploadText {
		return s[:maxAgentUploadText]
	}
	return s
}

// itemAgentUpload decodes the record of an iterated item.
func itemAgentUpload(item *badger.Item) (AgentUpload, error) {
	var a AgentUpload
	err := item.Value(func(b []byte) error {
		var err error
		a, err = decodeAgentUpload(item.Key(), b)
		return err
	})
	return a, err
}

// getAgentUpload reads the record under key, or ErrNotFound.
func getAgentUpload(txn *badger.Txn, key []byte) (AgentUpload, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return AgentUpload{}, fmt.Errorf("storage: agent upload %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return AgentUpload{}, err
	}
	return itemAgentUpload(item)
}

// findAgentUpload reads the current state of a's version, waiting or failed, or ErrNotFound
// when it was replaced or removed.
func findAgentUpload(txn *badger.Txn, a AgentUpload) (AgentUpload, error) {
	for _, failed := range []bool{a.Failed, !a.Failed} {
		cur, err := getAgentUpload(txn, agentKey(failed, a.Kind, a.seq))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return AgentUpload{}, err
		}
		if cur.upload != a.upload {
			break
		}
		return cur, nil
	}
	return AgentUpload{}, fmt.Errorf("storage: agent upload %s/%s (%d): %w", a.Kind, a.Name, a.seq, ErrNotFound)
}

// dropAgentUpload deletes a kept upload, its name entry if it is still its, and hands its
// chunks to the sweeper.
func dropAgentUpload(txn *badger.Txn, a AgentUpload) error {
	key := a.key()
	if err := txn.Delete(key); err != nil {
		return err
	}
	if err := txn.Set(orphanKey(a.upload), nil); err != nil {
		return err
	}
	idx := agentNameKey(a.Kind, a.Name)
	item, err := txn.Get(idx)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return item.Value(func(cur []byte) error {
		if bytes.Equal(cur, key) {
			return txn.Delete(idx)
		}
		return nil
	})
}

// PutAgentUpload keeps the upload as kind/name, waiting for delivery; when it returns nil
// it is durable (with SyncWrites), as CommitFile. A kept upload of the same kind and name
// (waiting or failed) is replaced, and the new one goes to the end of its kind's order:
// created is false then. Beyond Options.MaxAgentUploads kept uploads (waiting and failed;
// a replacement takes no new place) it fails with ErrQueueFull, and with ErrNoSpace as
// CommitFile. It aborts u on error.
func (s *Store) PutAgentUpload(u *Upload, kind, name string) (created bool, err error) {
	if err := checkAgentUpload(kind, name); err != nil {
		u.Abort()
		return false, err
	}
	if err := u.finish(); err != nil {
		u.Abort()
		return false, err
	}
	var old *AgentUpload
	s.agentMu.Lock()
	// The sequence number is taken under agentMu: arrival order is commit order, and the
	// head of a kind is also its oldest upload.
	a := AgentUpload{Kind: kind, Name: name}
	a.seq, err = s.nextUploadID()
	if err == nil {
		a.Received = time.Now()
		a.Due = a.Received
		err = s.updateSized(u.staged()+int64(2*len(name)+len(kind)+64), func(txn *badger.Txn) error {
			old = nil
			chunks, err := u.stage(txn)
			if err != nil {
				return err
			}
			a.upload, a.chunks, a.Size = u.id, chunks, u.size
			idx := agentNameKey(kind, name)
			item, err := txn.Get(idx)
			switch {
			case err == nil:
				oldKey, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				prev, err := getAgentUpload(txn, oldKey)
				if err == nil {
					if err := dropAgentUpload(txn, prev); err != nil {
						return err
					}
					old = &prev
				} else if !errors.Is(err, ErrNotFound) {
					return err
				}
			case !errors.Is(err, badger.ErrKeyNotFound):
				return err
			}
			if bound := s.opts.MaxAgentUploads; old == nil && bound > 0 && s.agentTotal() >= int64(bound) {
				return fmt.Errorf("%d agent uploads kept: %w", s.agentTotal(), ErrQueueFull)
			}
			key := a.key()
			if err := txn.Set(key, encodeAgentUpload(a)); err != nil {
				return err
			}
			return txn.Set(idx, key)
		})
	}
	if err == nil {
		if old != nil {
			s.agentRemoved(*old)
		}
		s.agentAdded(a)
	}
	s.agentMu.Unlock()
	if err != nil {
		u.Abort()
		return false, fmt.Errorf("storage: keep agent upload %s/%s: %w", kind, name, err)
	}
	u.release()
	return old == nil, s.syncIfDurable()
}

// NextAgentUpload returns the oldest waiting (not failed) upload of kind, or false when none
// waits. Its Due says when it may be attempted. It costs no read when none waits, and one
// seek otherwise: it starts from the head the store knows, past the keys of the uploads
// delivered before it (whose deletions the engine would otherwise skip one by one).
func (s *Store) NextAgentUpload(kind string) (AgentUpload, bool, error) {
	s.agentMu.Lock()
	var from uint64
	c := s.agentCounts[kind]
	waiting := c != nil && c.waiting > 0
	if waiting {
		from = c.headSeq
	}
	s.agentMu.Unlock()
	if !waiting {
		return AgentUpload{}, false, nil
	}
	return s.agentHead(kind, from)
}

// agentHead reads the first waiting upload of kind at or after sequence number from.
func (s *Store) agentHead(kind string, from uint64) (AgentUpload, bool, error) {
	var a AgentUpload
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: agentPrefix(false, kind), PrefetchSize: 1})
		defer it.Close()
		it.Seek(agentKey(false, kind, from))
		if !it.Valid() {
			return nil
		}
		return it.Item().Value(func(b []byte) error {
			var err error
			a, err = decodeAgentUpload(it.Item().Key(), b)
			found = err == nil
			return err
		})
	})
	if err != nil {
		return AgentUpload{}, false, fmt.Errorf("storage: next agent upload of %s: %w", kind, err)
	}
	return a, found, nil
}

// OpenAgentUpload returns a reader of a kept upload's content, which must be closed. It
// fails with ErrNotFound when that version was replaced or removed since.
func (s *Store) OpenAgentUpload(a AgentUpload) (io.ReadCloser, error) {
	txn := s.db.NewTransaction(false)
	cur, err := findAgentUpload(txn, a)
	if err != nil {
		txn.Discard()
		return nil, err
	}
	return newChunkReader(txn, cur.upload, cur.chunks, cur.Size), nil
}

// DeleteAgentUpload removes that version of a kept upload (delivered, or removed by an
// operator), waiting or failed; one replaced or removed meanwhile is left alone (nil). Its
// chunks are left to the sweeper. The removal is durable when it returns nil (SyncWrites).
func (s *Store) DeleteAgentUpload(a AgentUpload) error {
	s.agentMu.Lock()
	var removed *AgentUpload
	err := s.reclaim(func(txn *badger.Txn) error {
		removed = nil
		cur, err := findAgentUpload(txn, a)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		removed = &cur
		return dropAgentUpload(txn, cur)
	})
	if err == nil && removed != nil {
		s.agentRemoved(*removed)
	}
	s.agentMu.Unlock()
	if err != nil {
		return fmt.Errorf("storage: delete agent upload %s/%s: %w", a.Kind, a.Name, err)
	}
	if removed == nil {
		return nil
	}
	return s.syncIfDurable()
}

// RetryAgentUpload records a failed delivery attempt of a waiting upload: one more attempt,
// lastErr (cut to 1 KiB), and the next attempt not before due. The upload keeps its place
// in its kind's order. It fails with ErrNotFound when that version no longer waits
// (replaced, removed or failed meanwhile). It does not sync: a crash forgets at most the
// last attempt.
func (s *Store) RetryAgentUpload(a AgentUpload, due time.Time, lastErr string) error {
	s.agentMu.Lock()
	defer s.agentMu.Unlock()
	// A rewrite in place, not growth: held to the reserve, a full disk would keep the
	// upload due at once, for the worker to retry in a loop.
	err := s.reclaim(func(txn *badger.Txn) error {
		cur, err := getAgentUpload(txn, agentKey(false, a.Kind, a.seq))
		if err != nil {
			return err
		}
		if cur.upload != a.upload {
			return ErrNotFound
		}
		cur.Attempts++
		cur.LastError = cut(lastErr)
		cur.Due = due
		return txn.Set(cur.key(), encodeAgentUpload(cur))
	})
	if err != nil {
		return fmt.Errorf("storage: retry agent upload %s/%s: %w", a.Kind, a.Name, err)
	}
	return nil
}

// FailAgentUpload keeps a waiting upload aside as failed, for reason (cut to 1 KiB): it is
// no longer delivered, and stays listed (AgentUploads) until removed, replaced or expired.
// An upload already failed is left as it is; one replaced or removed meanwhile yields
// ErrNotFound.
func (s *Store) FailAgentUpload(a AgentUpload, reason string) error {
	s.agentMu.Lock()
	var moved *AgentUpload
	err := s.reclaim(func(txn *badger.Txn) error {
		moved = nil
		cur, err := findAgentUpload(txn, a)
		if err != nil || cur.Failed {
			return err
		}
		if err := txn.Delete(cur.key()); err != nil {
			return err
		}
		next := cur
		next.Failed, next.FailReason = true, cut(reason)
		if err := txn.Set(next.key(), encodeAgentUpload(next)); err != nil {
			return err
		}
		idx := agentNameKey(cur.Kind, cur.Name)
		item, err := txn.Get(idx)
		if errors.Is(err, badger.ErrKeyNotFound) {
			moved = &cur
			return nil
		}
		if err != nil {
			return err
		}
		if err := item.Value(func(v []byte) error {
			if bytes.Equal(v, cur.key()) {
				return txn.Set(idx, next.key())
			}
			return nil
		}); err != nil {
			return err
		}
		moved = &cur
		return nil
	})
	if err == nil && moved != nil {
		s.agentRemoved(*moved)
		failed := *moved
		failed.Failed = true
		s.agentAdded(failed)
	}
	s.agentMu.Unlock()
	if err != nil {
		return fmt.Errorf("storage: fail agent upload %s/%s: %w", a.Kind, a.Name, err)
	}
	return nil
}

// AgentUploads calls fn for each kept upload of kind ("" = every kind), waiting ones or
// failed ones, in arrival order, until fn returns false. It reads one snapshot.
func (s *Store) AgentUploads(kind string, failed bool, fn func(AgentUpload) bool) error {
	kinds := []string{kind}
	if kind == "" {
		kinds = s.agentKinds()
	}
	err := s.db.View(func(txn *badger.Txn) error {
		// One iterator per kind, merged by sequence number (arrival order).
		its := make([]*badger.Iterator, 0, len(kinds))
		defer func() {
			for _, it := range its {
				it.Close()
			}
		}()
		for _, k := range kinds {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: agentPrefix(failed, k), PrefetchSize: 16})
			it.Rewind()
			its = append(its, it)
		}
		for {
			var best *badger.Iterator
			var bestSeq uint64
			for _, it := range its {
				if !it.Valid() {
					continue
				}
				_, seq, _, ok := parseAgentKey(it.Item().Key())
				if !ok {
					return fmt.Errorf("bad key %q", it.Item().Key())
				}
				if best == nil || seq < bestSeq {
					best, bestSeq = it, seq
				}
			}
			if best == nil {
				return nil
			}
			a, err := itemAgentUpload(best.Item())
			if err != nil {
				return err
			}
			if !fn(a) {
				return nil
			}
			best.Next()
		}
	})
	if err != nil {
		return fmt.Errorf("storage: list agent uploads: %w", err)
	}
	return nil
}

// ExpireAgentUploads removes the kept uploads (waiting and failed) of every kind received
// before before, at most limit of them (limit ≤ 0: no limit), and returns how many it
// removed. Their chunks are left to SweepOrphans.
func (s *Store) ExpireAgentUploads(before time.Time, limit int) (int, error) {
	total := 0
	for _, kind := range s.agentKinds() {
		n, err := s.ExpireAgentUploadsOf(kind, before, limit-total)
		total += n
		if err != nil {
			return total, err
		}
		if limit > 0 && total >= limit {
			break
		}
	}
	return total, nil
}

// ExpireAgentUploadsOf is ExpireAgentUploads for one kind (limit ≤ 0: no limit). A kind's
// uploads are visited in arrival order, which is the order they were received in unless the
// clock went back: the visit stops at the first one received at or after before.
func (s *Store) ExpireAgentUploadsOf(kind string, before time.Time, limit int) (int, error) {
	const batch = 256
	total := 0
	for _, failed := range []bool{false, true} {
		for limit <= 0 || total < limit {
			n := batch
			if limit > 0 && limit-total < n {
				n = limit - total
			}
			removed, more, err := s.expireAgentBatch(kind, failed, before.UnixNano(), n)
			total += removed
			if err != nil {
				return total, fmt.Errorf("storage: expire agent uploads of %s: %w", kind, err)
			}
			if !more {
				break
			}
		}
	}
	return total, nil
}

// expireAgentBatch removes up to n uploads of kind (waiting or failed) received before
// before, in one transaction. more reports that n were removed (there may be others).
func (s *Store) expireAgentBatch(kind string, failed bool, before int64, n int) (removed int, more bool, err error) {
	s.agentMu.Lock()
	defer s.agentMu.Unlock()
	var drop []AgentUpload
	err = s.reclaim(func(txn *badger.Txn) error {
		drop = drop[:0]
		it := txn.NewIterator(badger.IteratorOptions{Prefix: agentPrefix(failed, kind), PrefetchSize: 16})
		for it.Rewind(); it.Valid() && len(drop) < n; it.Next() {
			a, err := itemAgentUpload(it.Item())
			if err != nil {
				it.Close()
				return err
			}
			if a.Received.UnixNano() >= before {
				break
			}
			drop = append(drop, a)
		}
		it.Close()
		for _, a := range drop {
			if err := dropAgentUpload(txn, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	for _, a := range drop {
		s.agentRemoved(a)
	}
	return len(drop), len(drop) == n, nil
}

// AgentUploadStats returns the counts of every kind's kept uploads (in memory, exact).
func (s *Store) AgentUploadStats() AgentUploadStats {
	s.agentMu.Lock()
	defer s.agentMu.Unlock()
	var st AgentUploadStats
	for _, c := range s.agentCounts {
		st.Waiting += c.waiting
		st.Failed += c.failed
		st.WaitingBytes += c.bytes
		if c.headSeq != 0 && (st.OldestWaiting.IsZero() || c.head.Before(st.OldestWaiting)) {
			st.OldestWaiting = c.head
		}
	}
	return st
}

// AgentUploadStatsOf returns the counts of one kind's kept uploads.
func (s *Store) AgentUploadStatsOf(kind string) AgentUploadStats {
	s.agentMu.Lock()
	defer s.agentMu.Unlock()
	c := s.agentCounts[kind]
	if c == nil {
		return AgentUploadStats{}
	}
	st := AgentUploadStats{Waiting: c.waiting, Failed: c.failed, WaitingBytes: c.bytes}
	if c.headSeq != 0 {
		st.OldestWaiting = c.head
	}
	return st
}

// agentKinds returns the kinds the store has held an upload of since it opened, sorted.
func (s *Store) agentKinds() []string {
	s.agentMu.Lock()
	defer s.agentMu.Unlock()
	kinds := make([]string, 0, len(s.agentCounts))
	for k := range s.agentCounts {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return kinds
}

// agentTotal counts the kept uploads; agentMu is held.
func (s *Store) agentTotal() int64 {
	var n int64
	for _, c := range s.agentCounts {
		n += c.waiting + c.failed
	}
	return n
}

func (s *Store) agentCount(kind string) *agentKindCount {
	c := s.agentCounts[kind]
	if c == nil {
		if s.agentCounts == nil {
			s.agentCounts = make(map[string]*agentKindCount)
		}
		c = &agentKindCount{}
		s.agentCounts[kind] = c
	}
	return c
}

// agentAdded counts a committed upload; agentMu is held.
func (s *Store) agentAdded(a AgentUpload) {
	c := s.agentCount(a.Kind)
	if a.Failed {
		c.failed++
		return
	}
	c.waiting++
	c.bytes += a.Size
	if c.headSeq == 0 || a.seq < c.headSeq {
		c.headSeq, c.head = a.seq, a.Received
	}
}

// agentRemoved uncounts an upload whose removal (or move) was committed, and finds the new
// head of its kind when it was the head; agentMu is held.
func (s *Store) agentRemoved(a AgentUpload) {
	c := s.agentCount(a.Kind)
	if a.Failed {
		c.failed--
		return
	}
	c.waiting--
	c.bytes -= a.Size
	if a.seq != c.headSeq {
		return
	}
	c.headSeq, c.head = 0, time.Time{}
	if c.waiting == 0 {
		return
	}
	// Every waiting upload of the kind came after the head removed.
	head, found, err := s.agentHead(a.Kind, a.seq)
	if err != nil || !found {
		// The count stays exact; the age of the oldest is unknown until the next change.
		s.log.Warn("cannot read the oldest waiting agent upload", "kind", a.Kind, "err", err)
		return
	}
	c.headSeq, c.head = head.seq, head.Received
}

// loadAgentUploads counts the kept uploads (Open, Restore). Undecodable records are
// skipped (logged): they are neither delivered nor counted.
func (s *Store) loadAgentUploads() error {
	s.agentMu.Lock()
	defer s.agentMu.Unlock()
	s.agentCounts = make(map[string]*agentKindCount)
	err := s.db.View(func(txn *badger.Txn) error {
		for _, prefix := range []string{prefixAgentWaiting, prefixAgentFailed} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
			for it.Rewind(); it.Valid(); it.Next() {
				a, err := itemAgentUpload(it.Item())
				if err != nil {
					s.log.Warn("skipping an undecodable agent upload record", "err", err)
					continue
				}
				s.agentAdded(a)
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: count agent uploads: %w", err)
	}
	return nil
}
