package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Records of files and jobs are stored in a compact binary form (version 2): a version byte,
// then fields in a fixed order, each a varint or a length-prefixed byte string. The signature
// block is kept raw, not base64 as in the JSON of version 1 (whose records start with '{'
// and are still read): a record costs about its header's size, and with the content in the
// value log that is most of what a small file writes.

// recordV2 is the first byte of a version 2 record.
const recordV2 = 2

// errShortRecord is returned when a record ends before its fields.
var errShortRecord = errors.New("record truncated")

// recordWriter appends a record's fields.
type recordWriter struct{ b []byte }

func newRecord(size int) *recordWriter {
	w := &recordWriter{b: make([]byte, 0, size+32)}
	w.b = append(w.b, recordV2)
	return w
}

func (w *recordWriter) bytes(p []byte)  { w.uint(uint64(len(p))); w.b = append(w.b, p...) }
func (w *recordWriter) string(s string) { w.uint(uint64(len(s))); w.b = append(w.b, s...) }
func (w *recordWriter) uint(v uint64)   { w.b = binary.AppendUvarint(w.b, v) }
func (w *recordWriter) int(v int64)     { w.b = binary.AppendVarint(w.b, v) }

// recordReader reads a record's fields; the first failure sticks in err.
type recordReader struct {
	b   []byte
	err error
}

// readRecord starts reading b, a version 2 record.
func readRecord(b []byte) *recordReader {
	r := &recordReader{b: b}
	switch {
	case len(b) == 0:
		r.err = errShortRecord
	case b[0] != recordV2:
		r.err = fmt.Errorf("unknown record version %d", b[0])
	default:
		r.b = b[1:]
	}
	return r
}

func (r *recordReader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShortRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) int() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShortRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns a copy of the next byte string (nil when empty).
func (r *recordReader) bytes() []byte {
	n := r.uint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errShortRecord
		return nil
	}
	var p []byte
	if n > 0 {
		p = append([]byte(nil), r.b[:n]...)
	}
	r.b = r.b[n:]
	return p
}

func (r *recordReader) string() string { return string(r.bytes()) }

// done returns the first error, or one for bytes left after the last field.
func (r *recordReader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes after the record", len(r.b))
	}
	return r.err
}
