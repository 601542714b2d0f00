package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// FileMeta describes a stored shared file.
type FileMeta struct {
	Key FileKey
	// Header is the signature block (without the empty line that ends it) as the relay keeps
	// it: the source's lines, with the relay's hash_value and expires (sigblock.Relayed), so
	// that the file can be forwarded or served with its proof intact and no client claim.
	Header []byte
	// Algorithm is the hash algorithm of the block ("sha256", ...); Hash is the hex hash of
	// the content, computed by the relay.
	Algorithm string
	Hash      string
	Size      int64
	Expires   time.Time
	Stored    time.Time
	upload    uint64
	chunks    uint32
}

// fileRecord is FileMeta's stored form in version 1 (JSON), still read; encodeFile writes
// version 2 (record.go).
type fileRecord struct {
	V         int    `json:"v"`
	Header    []byte `json:"header"`
	Algorithm string `json:"alg"`
	Hash      string `json:"hash"`
	Size      int64  `json:"size"`
	Expires   int64  `json:"expires"`
	Stored    int64  `json:"stored"`
	Upload    uint64 `json:"upload"`
	Chunks    uint32 `json:"chunks"`
}

// encodeFile returns m's record (version 2): header, algorithm, hash, size, expires (Unix
// seconds), stored (Unix milliseconds), upload, chunks.
func encodeFile(m FileMeta) ([]byte, error) {
	w := newRecord(len(m.Header) + len(m.Algorithm) + len(m.Hash))
	w.bytes(m.Header)
	w.string(m.Algorithm)
	w.string(m.Hash)
	w.int(m.Size)
	w.int(m.Expires.Unix())
	w.int(m.Stored.UnixMilli())
	w.uint(m.upload)
	w.uint(uint64(m.chunks))
	return w.b, nil
}

// decodeFile reads a record of version 2 or 1.
func decodeFile(k FileKey, b []byte) (FileMeta, error) {
	if len(b) > 0 && b[0] == '{' {
		return decodeFileV1(k, b)
	}
	r := readRecord(b)
	m := FileMeta{Key: k, Header: r.bytes(), Algorithm: r.string(), Hash: r.string(), Size: r.int()}
	expires, stored, upload, chunks := r.int(), r.int(), r.uint(), r.uint()
	if err := r.done(); err != nil {
		return FileMeta{}, fmt.Errorf("storage: file %s: corrupt record: %w", k, err)
	}
	if chunks > 1<<32-1 || m.Size < 0 {
		return FileMeta{}, fmt.Errorf("storage: file %s: corrupt record: %d chunks, size %d", k, chunks, m.Size)
	}
	m.Expires, m.Stored, m.upload, m.chunks = time.Unix(expires, 0), time.UnixMilli(stored), upload, uint32(chunks)
	return m, nil
}

func decodeFileV1(k FileKey, b []byte) (FileMeta, error) {
	var r fileRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return FileMeta{}, fmt.Errorf("storage: file %s: corrupt record: %w", k, err)
	}
	if r.V != 1 {
		return FileMeta{}, fmt.Errorf("storage: file %s: unknown record version %d", k, r.V)
	}
	return FileMeta{
		Key: k, Header: r.Header, Algorithm: r.Algorithm, Hash: r.Hash, Size: r.Size,
		Expires: time.Unix(r.Expires, 0), Stored: time.UnixMilli(r.Stored), upload: r.Upload, chunks: r.Chunks,
	}, nil
}

// Upload receives a file's content chunk by chunk. Nothing of it is visible until it is
// committed with CommitFile or Enqueue; an abandoned upload leaves only orphan chunks, which
// Abort or the sweeper removes. An Upload is not safe for concurrent use.
//
// Its memory follows its size: a file smaller than a chunk is buffered in a buffer of its
// declared size, and a larger one in chunk-sized buffers the store lends (chunkPool). Full
// chunks are written in the background, one at a time, while the next one fills: the caller
// reads (and hashes) chunk N+1 while chunk N goes to the store. An upload holds at most two
// chunks, the one filling and the one being written; a failed write is reported by the next
// Write, ReadFrom or the commit.
type Upload struct {
	s      *Store
	id     uint64
	buf    []byte // the chunk filling
	spare  []byte // a chunk-sized buffer for the next chunk (the one last written), or nil
	chunks uint32 // chunks handed to the writer
	size   int64
	done   bool

	// written carries the result of the chunk being written in the background, when
	// writing is true; wbuf is that chunk's buffer, the writer's until then. err is the first
	// write that failed: every later Write, ReadFrom and finish fail with it.
	written chan error
	writing bool
	wbuf    []byte
	err     error
	// bulk is set once the upload has written bulkAfter bytes (logAdvice.bulkStart), until
	// drop.
	bulk bool
}

// bulkAfter is the content an upload writes before it counts as bulk (logAdvice): a large
// file's pages then fault in cheaply; smaller ones keep the advice, which saves wear.
const bulkAfter = 4 << 20

// firstBufferUnknown is the first buffer of an upload of unknown size; it doubles up to a
// chunk as the content comes.
const firstBufferUnknown = 16 << 10

// NewUpload starts an upload of at most size bytes (-1 if unknown). It fails with
// ErrNoSpace when the data directory cannot take size bytes.
func (s *Store) NewUpload(size int64) (*Upload, error) {
	if size > 0 {
		if err := s.checkSpace(size); err != nil {
			return nil, fmt.Errorf("storage: upload of %d bytes: %w", size, err)
		}
	}
	id, err := s.nextUploadID()
	if err != nil {
		return nil, err
	}
	s.active.Store(id, struct{}{})
	u := &Upload{s: s, id: id}
	// One byte more than the declared size: the read that finds the end of the content then
	// has room, and does not grow the buffer.
	switch first := s.opts.ChunkSize; {
	case size >= 0 && size < int64(first)-1:
		u.buf = make([]byte, 0, size+1)
	case size < 0 && firstBufferUnknown < first:
		u.buf = make([]byte, 0, firstBufferUnknown)
	default:
		u.buf = s.chunkPool.get()
	}
	return u, nil
}

// Size returns the number of bytes written so far.
func (u *Upload) Size() int64 { return u.size }

// Write buffers p; every full chunk goes to the store in the background.
func (u *Upload) Write(p []byte) (int, error) {
	if err := u.usable(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		if err := u.room(); err != nil {
			return written, err
		}
		n := copy(u.buf[len(u.buf):cap(u.buf)], p)
		u.buf = u.buf[:len(u.buf)+n]
		p = p[n:]
		written += n
		u.size += int64(n)
	}
	return written, nil
}

// ReadFrom copies r into the upload: r reads straight into the chunk buffer, with no copy
// buffer between.
func (u *Upload) ReadFrom(r io.Reader) (int64, error) {
	if err := u.usable(); err != nil {
		return 0, err
	}
	var total int64
	for {
		if err := u.room(); err != nil {
			return total, err
		}
		n, err := r.Read(u.buf[len(u.buf):cap(u.buf)])
		u.buf = u.buf[:len(u.buf)+n]
		u.size += int64(n)
		total += int64(n)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// usable fails on a finished upload, or one whose write failed.
func (u *Upload) usable() error {
	if u.done {
		return errors.New("storage: write to a finished upload")
	}
	return u.err
}

// room makes room in the buffer for at least one more byte: a buffer smaller than a chunk
// (the upload started small) grows, a full chunk is handed to the writer. A full chunk is
// handed over only once more content comes: a file of exactly one chunk is still written by
// its commit's transaction.
func (u *Upload) room() error {
	if len(u.buf) < cap(u.buf) {
		return nil
	}
	if chunk := u.s.opts.ChunkSize; cap(u.buf) < chunk {
		var grown []byte
		if n := max(2*cap(u.buf), firstBufferUnknown); n < chunk {
			grown = make([]byte, 0, n)
		} else {
			grown = u.s.chunkPool.get()
		}
		u.buf = append(grown, u.buf...)
		return nil
	}
	return u.flush()
}

// flush hands the buffered bytes to the writer as the next chunk, once the chunk before is
// written: at most one is in flight, and they reach the store in order. The buffer of the
// chunk written before takes the place of this one.
func (u *Upload) flush() error {
	if len(u.buf) == 0 {
		return u.wait()
	}
	if err := u.wait(); err != nil {
		return err
	}
	if u.written == nil {
		u.written = make(chan error, 1)
	}
	buf, n := u.buf, u.chunks
	if !u.bulk && int64(n)*int64(u.s.opts.ChunkSize) >= bulkAfter {
		u.bulk = true
		u.s.advice.bulkStart()
	}
	u.chunks++
	u.wbuf, u.writing = buf, true
	go func(done chan<- error) { done <- u.writeChunk(n, buf) }(u.written)
	if u.spare != nil {
		u.buf, u.spare = u.spare, nil
	} else {
		u.buf = u.s.chunkPool.get()
	}
	return nil
}

// wait waits for the chunk in flight, if any, and returns the upload's write error.
func (u *Upload) wait() error {
	if u.writing {
		err := <-u.written
		u.writing = false
		// Badger has copied the value once the commit returns, so the buffer can be reused.
		u.spare, u.wbuf = u.wbuf[:0], nil
		if err != nil && u.err == nil {
			u.err = err
		}
	}
	return u.err
}

// writeChunk stores buf as chunk n. The first chunk also writes the upload's orphan marker,
// in the same transaction: whatever happens next, the sweeper can find and remove chunks
// that no record references. It runs in the writer's goroutine and touches only what does
// not change (the store, the upload's id) and buf.
func (u *Upload) writeChunk(n uint32, buf []byte) error {
	key, first := chunkKey(u.id, n), n == 0
	// Every chunk checks the reserve again: the size checked by NewUpload may be unknown (a
	// chunked request) or taken by concurrent uploads, and Badger writes through a memory
	// map, so a full disk would be a SIGBUS, not an error.
	err := u.s.updateSized(int64(len(buf)), func(txn *badger.Txn) error {
		if first {
			if err := txn.Set(orphanKey(u.id), nil); err != nil {
				return err
			}
		}
		return txn.Set(key, buf)
	})
	if err != nil {
		return fmt.Errorf("storage: write chunk %d of upload %d: %w", n, u.id, err)
	}
	return nil
}

// finish prepares the commit of the record that will reference the chunks. A file that fits
// in one chunk has written nothing yet: its content is written by the commit's own
// transaction (stage), atomically with the record and with one sync. A larger file's last
// chunk is flushed, every chunk written and made durable first, so the record never reaches
// the disk before its content.
func (u *Upload) finish() error {
	if err := u.usable(); err != nil {
		if u.done {
			return errors.New("storage: upload already finished")
		}
		return err
	}
	if u.chunks == 0 {
		return nil // the commit's transaction writes the chunk, and checks the space for it
	}
	if err := u.flush(); err != nil {
		return err
	}
	if err := u.wait(); err != nil {
		return err
	}
	return u.s.syncIfDurable()
}

// staged returns the bytes stage will write: the content of a single-chunk file.
func (u *Upload) staged() int64 {
	if u.chunks > 0 {
		return 0
	}
	return int64(len(u.buf))
}

// stage writes, inside the commit transaction, what finish left for it: the content of a
// single-chunk file, or the removal of a multi-chunk upload's orphan marker. It returns the
// number of chunks the record references.
func (u *Upload) stage(txn *badger.Txn) (uint32, error) {
	if u.chunks > 0 {
		return u.chunks, txn.Delete(orphanKey(u.id))
	}
	if len(u.buf) == 0 {
		return 0, nil
	}
	return 1, txn.Set(chunkKey(u.id, 0), u.buf)
}

// Abort abandons the upload and deletes its chunks, once the one in flight, if any, is
// written.
func (u *Upload) Abort() {
	if u.done {
		return
	}
	_ = u.wait() // the error is the reason of the abort, reported by the caller
	u.drop()
	if u.chunks == 0 {
		return // nothing was written
	}
	if err := u.s.deleteChunks(u.id); err != nil {
		u.s.log.Warn("abandoned upload left for the sweeper", "upload", u.id, "err", err)
	}
}

// release marks the upload finished after its record was committed.
func (u *Upload) release() { u.drop() }

// drop marks the upload finished and gives its buffers back; nothing is in flight.
func (u *Upload) drop() {
	u.done = true
	if u.bulk {
		u.bulk = false
		u.s.advice.bulkEnd()
	}
	u.s.chunkPool.put(u.buf)
	u.s.chunkPool.put(u.spare)
	u.buf, u.spare = nil, nil
	u.s.active.Delete(u.id)
}

// chunkPool lends chunk-sized buffers to uploads. Only uploads larger than a chunk hold
// one, at most two each (upload slots bound how many are in progress); the pool keeps those
// given back for the next uploads until the garbage collector takes them.
type chunkPool struct {
	size int
	pool sync.Pool // of *[]byte, cap size
}

// get returns an empty chunk-sized buffer.
func (p *chunkPool) get() []byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, p.size)
}

// put gives back a buffer from get; anything else (nil, an upload's small buffer) is left
// to the garbage collector.
func (p *chunkPool) put(b []byte) {
	if cap(b) != p.size {
		return
	}
	b = b[:0]
	p.pool.Put(&b)
}

// CommitFile makes the upload visible as the file meta.Key, replacing any previous version,
// and indexes it for expiry. When it returns nil the file is durable (with SyncWrites).
// meta.Size is set from the upload.
func (s *Store) CommitFile(u *Upload, meta FileMeta) error {
	if err := u.finish(); err != nil {
		u.Abort()
		return err
	}
	replaced := false
	// Holding the file's stripe, no other commit, delete or expiry of this file runs
	// meanwhile: the transaction below cannot conflict (see keyLocks).
	unlock := s.keys.lock(fileKey(meta.Key))
	err := s.updateSized(u.staged()+int64(len(meta.Header)), func(txn *badger.Txn) error {
		replaced = false
		chunks, err := u.stage(txn)
		if err != nil {
			return err
		}
		meta.upload, meta.chunks, meta.Size = u.id, chunks, u.size
		val, err := encodeFile(meta)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		fk := fileKey(meta.Key)
		item, err := txn.Get(fk)
		switch {
		case err == nil:
			b, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			old, err := decodeFile(meta.Key, b)
			if err != nil {
				return err
			}
			if err := txn.Delete(ttlKey(old.Expires.Unix(), meta.Key)); err != nil {
				return err
			}
			if err := txn.Set(orphanKey(old.upload), nil); err != nil {
				return err
			}
			replaced = true
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		if err := txn.Set(fk, val); err != nil {
			return err
		}
		return txn.Set(ttlKey(meta.Expires.Unix(), meta.Key), nil)
	})
	unlock()
	if err != nil {
		u.Abort()
		return fmt.Errorf("storage: commit file %s: %w", meta.Key, err)
	}
	u.release()
	if !replaced {
		s.files.Add(1)
	}
	return s.syncIfDurable()
}

// StatFile returns the metadata of a stored file, or ErrNotFound.
func (s *Store) StatFile(k FileKey) (FileMeta, error) {
	var meta FileMeta
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		meta, err = getFile(txn, k)
		return err
	})
	return meta, err
}

func getFile(txn *badger.Txn, k FileKey) (FileMeta, error) {
	item, err := txn.Get(fileKey(k))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return FileMeta{}, fmt.Errorf("storage: file %s: %w", k, ErrNotFound)
	}
	if err != nil {
		return FileMeta{}, fmt.Errorf("storage: file %s: %w", k, err)
	}
	var meta FileMeta
	err = item.Value(func(b []byte) error {
		meta, err = decodeFile(k, b)
		return err
	})
	return meta, err
}

// OpenFile returns a stored file's metadata and a reader of its content, both from one
// consistent snapshot: a file replaced or deleted meanwhile still reads whole. The reader
// must be closed.
func (s *Store) OpenFile(k FileKey) (FileMeta, io.ReadCloser, error) {
	txn := s.db.NewTransaction(false)
	meta, err := getFile(txn, k)
	if err != nil {
		txn.Discard()
		return FileMeta{}, nil, err
	}
	return meta, newChunkReader(txn, meta.upload, meta.chunks, meta.Size), nil
}

// DeleteFile removes a stored file; its chunks are left to the sweeper.
func (s *Store) DeleteFile(k FileKey) error {
	deleted := false
	unlock := s.keys.lock(fileKey(k))
	err := s.reclaim(func(txn *badger.Txn) error {
		deleted = false
		meta, err := getFile(txn, k)
		if err != nil {
			return err
		}
		deleted = true
		return dropFile(txn, meta)
	})
	unlock()
	if err != nil {
		return err
	}
	if deleted {
		s.files.Add(-1)
	}
	return nil
}

func dropFile(txn *badger.Txn, meta FileMeta) error {
	if err := txn.Delete(fileKey(meta.Key)); err != nil {
		return err
	}
	if err := txn.Delete(ttlKey(meta.Expires.Unix(), meta.Key)); err != nil {
		return err
	}
	return txn.Set(orphanKey(meta.upload), nil)
}

// FileCount returns the number of stored files.
func (s *Store) FileCount() int64 { return s.files.Load() }

// ExpireFiles deletes every file that expired at or before now, at most limit of them
// (limit ≤ 0: no limit), and returns how many it deleted. Their chunks are left to
// SweepOrphans.
func (s *Store) ExpireFiles(now time.Time, limit int) (int, error) {
	const batch = 256
	deleted := 0
	for limit <= 0 || deleted < limit {
		n := batch
		if limit > 0 && limit-deleted < n {
			n = limit - deleted
		}
		consumed, files, err := s.expireBatch(now.Unix(), n)
		deleted += files
		if err != nil {
			return deleted, err
		}
		if consumed < n {
			return deleted, nil
		}
	}
	return deleted, nil
}

// expireBatch deletes up to n expired files in one transaction; it returns how many index
// entries it consumed (stale ones included: a short count means the index is drained) and
// how many files it deleted.
//
// It lists the expired entries from a snapshot first, then takes the stripes of their files
// (keyLocks) and deletes in a transaction that reads only the file records: a PUT of one
// of these files waits for it, or runs before it, and neither fails with a conflict.
func (s *Store) expireBatch(now int64, n int) (consumed, files int, err error) {
	var keys, fks [][]byte
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixTTL), PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid() && len(keys) < n; it.Next() {
			key := it.Item().KeyCopy(nil)
			exp, fk, ok := parseTTLKey(key)
			if ok && exp > now {
				break
			}
			keys = append(keys, key)
			if ok {
				fks = append(fks, fileKey(fk))
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("storage: expire files: list: %w", err)
	}
	if len(keys) == 0 {
		return 0, 0, nil
	}
	unlock := s.keys.lock(fks...)
	defer unlock()
	err = s.reclaim(func(txn *badger.Txn) error {
		consumed, files = 0, 0
		for _, key := range keys {
			consumed++
			exp, fk, ok := parseTTLKey(key)
			if !ok {
				if err := txn.Delete(key); err != nil {
					return err
				}
				continue
			}
			meta, err := getFile(txn, fk)
			if err != nil || meta.Expires.Unix() != exp {
				// A stale index entry (the file was replaced or is gone).
				if err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
				if err := txn.Delete(key); err != nil {
					return err
				}
				continue
			}
			if err := dropFile(txn, meta); err != nil {
				return err
			}
			files++
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("storage: expire files: %w", err)
	}
	s.files.Add(int64(-files))
	return consumed, files, nil
}

// ListFiles calls fn for each stored file whose target is target ("" = all), in key order,
// until fn returns false.
func (s *Store) ListFiles(target string, fn func(FileMeta) bool) error {
	prefix := prefixFile
	if target != "" {
		prefix += target + "/"
	}
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k, ok := parseFileKey(string(it.Item().Key()[len(prefixFile):]))
			if !ok {
				continue
			}
			var meta FileMeta
			err := it.Item().Value(func(b []byte) error {
				var err error
				meta, err = decodeFile(k, b)
				return err
			})
			if err != nil {
				return err
			}
			if !fn(meta) {
				return nil
			}
		}
		return nil
	})
}
