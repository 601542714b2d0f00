package nodemap

import (
	"errors"
	"strings"
)

// The strings of a map are stored in blocks and addressed by one uint32: the block number in
// the high bits, the offset in the block in the low blockBits. A run of strings added together
// lies in one block, so that reading it back never copies; a run that starts a block may be
// longer than maxBlockSize (the block is then as long as the run).
const (
	blockBits    = 20
	maxBlockSize = 1 << blockBits
	minBlockSize = 4 << 10
	maxBlocks    = 1 << (32 - blockBits)
)

// errTooBig is returned when the strings of a map need more than maxBlocks blocks (4 GiB).
var errTooBig = errors.New("node map: too large (its ids, hostnames and key hashes exceed 4 GiB)")

// text is an append-only store of strings. Strings are read back (get) only after seal.
type text struct {
	blocks []string         // sealed blocks, by block number
	cur    *strings.Builder // the block being filled, numbered len(blocks); nil when none
}

// add appends the strings of parts one after the other and returns the offset of the first.
func (t *text) add(parts ...[]byte) (uint32, error) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if t.cur == nil || t.cur.Len() >= maxBlockSize || t.cur.Len()+n > t.cur.Cap() {
		if err := t.next(n); err != nil {
			return 0, err
		}
	}
	off := uint32(len(t.blocks))<<blockBits | uint32(t.cur.Len())
	for _, p := range parts {
		t.cur.Write(p)
	}
	return off, nil
}

// next seals the current block and starts one that can take n bytes. Blocks double from
// minBlockSize to maxBlockSize, so that a small map takes little memory and a big one few
// blocks, with never more than one block's worth of unused capacity.
func (t *text) next(n int) error {
	size := minBlockSize
	if t.cur != nil {
		size = min(2*t.cur.Cap(), maxBlockSize)
		t.seal()
	}
	if len(t.blocks) >= maxBlocks {
		return errTooBig
	}
	t.cur = &strings.Builder{}
	t.cur.Grow(max(size, n))
	return nil
}

// seal moves the current block, if any, to blocks.
func (t *text) seal() {
	if t.cur != nil {
		t.blocks = append(t.blocks, t.cur.String())
		t.cur = nil
	}
}

// get returns the n bytes at off. The text must be sealed.
func (t *text) get(off, n uint32) string {
	i := off & (maxBlockSize - 1)
	return t.blocks[off>>blockBits][i : i+n]
}
