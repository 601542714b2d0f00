package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// SweepOrphans deletes the chunks no record references: uploads abandoned by a crash or an
// error, and content of files replaced, expired or delivered. Uploads in progress in this
// process are left alone. It returns how many uploads it cleared.
func (s *Store) SweepOrphans(ctx context.Context) (int, error) {
	var ids []uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixOrphan)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().Key()
			if len(key) != len(prefixOrphan)+8 {
				continue
			}
			id := binary.BigEndian.Uint64(key[len(prefixOrphan):])
			if _, busy := s.active.Load(id); !busy {
				ids = append(ids, id)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: list orphans: %w", err)
	}
	cleared := 0
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return cleared, err
		}
		if err := s.deleteChunks(id); err != nil {
			return cleared, err
		}
		cleared++
	}
	return cleared, nil
}

// deleteChunks removes an upload's chunks in bounded transactions, then its orphan marker.
// It does nothing once the marker is gone (the chunks were adopted by a record).
func (s *Store) deleteChunks(id uint64) error {
	const batch = 512
	prefix := chunkPrefix(id)
	for {
		n, gone := 0, false
		err := s.reclaim(func(txn *badger.Txn) error {
			n, gone = 0, false
			// Reading the marker puts it in the transaction's read set: if a commit
			// adopts these chunks meanwhile, this transaction conflicts and re-checks.
			if _, err := txn.Get(orphanKey(id)); err != nil {
				if errors.Is(err, badger.ErrKeyNotFound) {
					gone = true
					return nil
				}
				return err
			}
			var keys [][]byte
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
			for it.Rewind(); it.Valid() && len(keys) < batch; it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			it.Close()
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			if n < batch {
				return txn.Delete(orphanKey(id))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("storage: delete chunks of upload %d: %w", id, err)
		}
		if gone || n < batch {
			return nil
		}
	}
}
