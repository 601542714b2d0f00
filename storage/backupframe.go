package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/dgraph-io/badger/v4/pb"
	"google.golang.org/protobuf/proto"
)

// maxBackupFrame bounds one record of a backup. Badger writes a backup as records, each an
// 8-byte little-endian length and that many bytes; a record holds one stream batch (a soft
// limit of 100 MiB, plus the last key's values). Anything much larger is not a backup.
const maxBackupFrame = 1 << 30

// frameChecker passes a backup stream through unchanged, refusing a record length no backup
// has. Badger's Load allocates the length it reads before it reads anything else, so a file
// that is not a backup would make it panic or run out of memory instead of failing.
type frameChecker struct {
	r       io.Reader
	hdr     [8]byte
	pending []byte // part of hdr not yet passed on
	left    uint64 // bytes of the current record not yet passed on
}

// next reads the next record header; it returns io.EOF at a clean end of the stream.
func (f *frameChecker) next() error {
	n, err := io.ReadFull(f.r, f.hdr[:])
	switch {
	case n == 0 && errors.Is(err, io.EOF):
		return io.EOF
	case err != nil:
		return fmt.Errorf("backup is truncated (a record header has %d of 8 bytes): %w", n, io.ErrUnexpectedEOF)
	}
	size := binary.LittleEndian.Uint64(f.hdr[:])
	if size > maxBackupFrame {
		return fmt.Errorf("not a keel-relay backup, or a corrupt one: a record of %d bytes (at most %d)", size, maxBackupFrame)
	}
	f.pending = f.hdr[:]
	f.left = size
	return nil
}

// Read implements io.Reader.
func (f *frameChecker) Read(p []byte) (int, error) {
	for len(f.pending) == 0 && f.left == 0 {
		if err := f.next(); err != nil {
			return 0, err
		}
	}
	if len(f.pending) > 0 {
		n := copy(p, f.pending)
		f.pending = f.pending[n:]
		return n, nil
	}
	if uint64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= uint64(n)
	if errors.Is(err, io.EOF) {
		if f.left > 0 {
			return n, fmt.Errorf("backup is truncated (%d bytes of a record missing): %w", f.left, io.ErrUnexpectedEOF)
		}
		err = nil
	}
	return n, err
}

// VerifyBackup reads a whole backup and checks that every record decodes, without loading
// anything: Restore runs it before it drops data, so a backup corrupt in its middle is refused
// while the store is still intact. It reads r to its end.
func VerifyBackup(r io.Reader) error {
	fc := &frameChecker{r: r}
	buf := make([]byte, 0, 1<<20)
	records := 0
	for {
		err := fc.next()
		if errors.Is(err, io.EOF) {
			if records == 0 {
				return errors.New("the backup is empty")
			}
			return nil
		}
		if err != nil {
			return err
		}
		size := fc.left
		if uint64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(fc.r, buf); err != nil {
			return fmt.Errorf("backup is truncated in record %d: %w", records+1, io.ErrUnexpectedEOF)
		}
		fc.left, fc.pending = 0, nil
		var list pb.KVList
		if err := proto.Unmarshal(buf, &list); err != nil {
			return fmt.Errorf("backup record %d does not decode: %w", records+1, err)
		}
		records++
	}
}
