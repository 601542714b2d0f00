package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// NodeMapRecord is the last node map the relay loaded successfully, kept so a restart with
// a missing or broken nodes file still routes as before.
type NodeMapRecord struct {
	Raw      []byte    `json:"raw"`
	Source   string    `json:"source"`
	LoadedAt time.Time `json:"loaded_at"`
}

type nodeMapValue struct {
	V int `json:"v"`
	NodeMapRecord
}

// SaveNodeMap stores the node map that was just loaded and validated.
func (s *Store) SaveNodeMap(r NodeMapRecord) error {
	val, err := json.Marshal(nodeMapValue{V: 1, NodeMapRecord: r})
	if err != nil {
		return fmt.Errorf("storage: encode node map: %w", err)
	}
	if err := s.updateSized(int64(len(val)), func(txn *badger.Txn) error { return txn.Set([]byte(keyNodeMap), val) }); err != nil {
		return fmt.Errorf("storage: save node map: %w", err)
	}
	return s.syncIfDurable()
}

// LoadNodeMap returns the last saved node map, or ErrNotFound.
func (s *Store) LoadNodeMap() (NodeMapRecord, error) {
	var v nodeMapValue
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyNodeMap))
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error { return json.Unmarshal(b, &v) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return NodeMapRecord{}, fmt.Errorf("storage: node map: %w", ErrNotFound)
	}
	if err != nil {
		return NodeMapRecord{}, fmt.Errorf("storage: load node map: %w", err)
	}
	if v.V != 1 {
		return NodeMapRecord{}, fmt.Errorf("storage: node map: unknown record version %d", v.V)
	}
	return v.NodeMapRecord, nil
}
