package storage

import (
	"errors"
	"fmt"
	"io"

	"github.com/dgraph-io/badger/v4"
)

// chunkReader streams an upload's chunks from one read transaction.
type chunkReader struct {
	txn    *badger.Txn
	it     *badger.Iterator
	upload uint64
	want   uint32 // chunks expected
	next   uint32 // index of the next chunk to load
	size   int64  // bytes expected
	read   int64
	buf    []byte
	off    int
	err    error
}

func newChunkReader(txn *badger.Txn, upload uint64, chunks uint32, size int64) *chunkReader {
	prefix := chunkPrefix(upload)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	it.Rewind()
	return &chunkReader{txn: txn, it: it, upload: upload, want: chunks, size: size}
}

// Read implements io.Reader.
func (r *chunkReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for r.off == len(r.buf) {
		if r.next == r.want {
			if r.read != r.size {
				r.err = fmt.Errorf("storage: upload %d: read %d bytes, want %d", r.upload, r.read, r.size)
				return 0, r.err
			}
			r.err = io.EOF
			return 0, io.EOF
		}
		if err := r.load(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	r.read += int64(n)
	return n, nil
}

// WriteTo implements io.WriterTo so io.Copy writes whole chunks without an extra buffer.
func (r *chunkReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if r.off < len(r.buf) {
			n, err := w.Write(r.buf[r.off:])
			r.off += n
			r.read += int64(n)
			total += int64(n)
			if err != nil {
				return total, err
			}
			continue
		}
		_, err := r.Read(nil)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (r *chunkReader) load() error {
	if !r.it.Valid() {
		return fmt.Errorf("storage: upload %d: chunk %d of %d missing", r.upload, r.next, r.want)
	}
	item := r.it.Item()
	if string(item.Key()) != string(chunkKey(r.upload, r.next)) {
		return fmt.Errorf("storage: upload %d: chunk %d of %d missing", r.upload, r.next, r.want)
	}
	var err error
	r.buf, err = item.ValueCopy(r.buf[:0])
	if err != nil {
		return fmt.Errorf("storage: upload %d: read chunk %d: %w", r.upload, r.next, err)
	}
	r.off = 0
	r.next++
	r.it.Next()
	return nil
}

// Close releases the snapshot.
func (r *chunkReader) Close() error {
	if r.it != nil {
		r.it.Close()
		r.it = nil
		r.txn.Discard()
	}
	if r.err == nil {
		r.err = errors.New("storage: read after close")
	}
	return nil
}
