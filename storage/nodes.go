package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// NodeMapRecord describes the node map kept in the store: the last map the relay loaded
// successfully, kept so that a restart with a missing or broken nodes file still routes as
// before. Its content is stored in chunks (as shared files are), so its size is not bounded by
// Badger's largest value.
type NodeMapRecord struct {
	Source   string    // the file it was loaded from
	LoadedAt time.Time // when it was loaded
	Digest   string    // hex SHA-256 of the content
	Size     int64     // bytes of content
	// SupersededBy, when not empty, is the digest of a newer map that was in force from
	// SupersededAt and could not be kept: this one is out of date and must not be routed with.
	SupersededBy string
	SupersededAt time.Time
}

// nodeMapValue is the stored form of the record under keyNodeMap. Version 1 held the file
// itself (Raw), which bounded it by Badger's largest value (storage.value_log_file_size);
// version 2 references an upload's chunks. Both are read; only version 2 is written.
type nodeMapValue struct {
	V        int       `json:"v"`
	Raw      []byte    `json:"raw,omitempty"`
	Source   string    `json:"source"`
	LoadedAt time.Time `json:"loaded_at"`
	Digest   string    `json:"digest,omitempty"`
	Size     int64     `json:"size,omitempty"`
	Upload   uint64    `json:"upload,omitempty"`
	Chunks   uint32    `json:"chunks,omitempty"`
}

// supersededValue is the stored form of the mark under keyNodeMapSuperseded: a record of its
// own, so that setting it never rewrites the (version 1) record.
type supersededValue struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// getNodeMap reads the record and its mark in txn.
func getNodeMap(txn *badger.Txn) (nodeMapValue, NodeMapRecord, error) {
	var v nodeMapValue
	item, err := txn.Get([]byte(keyNodeMap))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return v, NodeMapRecord{}, fmt.Errorf("storage: node map: %w", ErrNotFound)
	}
	if err != nil {
		return v, NodeMapRecord{}, fmt.Errorf("storage: node map: %w", err)
	}
	if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &v) }); err != nil {
		return v, NodeMapRecord{}, fmt.Errorf("storage: node map: corrupt record: %w", err)
	}
	r := NodeMapRecord{Source: v.Source, LoadedAt: v.LoadedAt, Digest: v.Digest, Size: v.Size}
	switch v.V {
	case 1:
		sum := sha256.Sum256(v.Raw)
		r.Digest, r.Size = hex.EncodeToString(sum[:]), int64(len(v.Raw))
	case 2:
	default:
		return v, NodeMapRecord{}, fmt.Errorf("storage: node map: unknown record version %d", v.V)
	}
	item, err = txn.Get([]byte(keyNodeMapSuperseded))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return v, r, nil
	}
	var sv supersededValue
	if err == nil {
		err = item.Value(func(b []byte) error { return json.Unmarshal(b, &sv) })
	}
	if err != nil || sv.By == "" {
		// A mark that cannot be read still says the kept map is out of date.
		sv.By = "unknown (unreadable mark)"
	}
	r.SupersededBy, r.SupersededAt = sv.By, sv.At
	return v, r, nil
}

// SaveNodeMap keeps the node map whose content r returns, described by rec (Digest and Size
// must be those of the content; Superseded* are ignored), in place of the one kept before.
// The content is written in chunks of Options.ChunkSize, each checked against the free-space
// reserve, made durable, then switched to in one transaction that also drops the previous
// map: a crash leaves either the previous map or this one, whole, and chunks of an unfinished
// save are removed by SweepOrphans. Content that does not match rec (the file changed while
// it was read) is refused. It returns the bytes written: the content, once.
func (s *Store) SaveNodeMap(r io.Reader, rec NodeMapRecord) (int64, error) {
	u, err := s.NewUpload(rec.Size)
	if err != nil {
		return 0, fmt.Errorf("storage: save node map: %w", err)
	}
	h := sha256.New()
	if _, err := u.ReadFrom(io.TeeReader(r, h)); err != nil {
		u.Abort()
		return 0, fmt.Errorf("storage: save node map: %w", err)
	}
	if digest := hex.EncodeToString(h.Sum(nil)); digest != rec.Digest || u.Size() != rec.Size {
		u.Abort()
		return 0, fmt.Errorf("storage: save node map: the content (%d bytes, sha256 %s) is not the map to keep (%d bytes, sha256 %s): "+
			"it changed while it was read", u.Size(), digest, rec.Size, rec.Digest)
	}
	if err := u.finish(); err != nil {
		u.Abort()
		return 0, fmt.Errorf("storage: save node map: %w", err)
	}
	var old uint64 // the upload of the map replaced, if any
	err = s.update(func(txn *badger.Txn) error {
		old = 0
		chunks, err := u.stage(txn)
		if err != nil {
			return err
		}
		prev, _, err := getNodeMap(txn)
		switch {
		case err == nil && prev.V == 2:
			old = prev.Upload
			if err := txn.Set(orphanKey(old), nil); err != nil {
				return err
			}
		case err != nil && !errors.Is(err, ErrNotFound):
			s.log.Warn("replacing an unreadable node map record", "err", err)
		}
		val, err := json.Marshal(nodeMapValue{V: 2, Source: rec.Source, LoadedAt: rec.LoadedAt, Digest: rec.Digest,
			Size: u.size, Upload: u.id, Chunks: chunks})
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		if err := txn.Delete([]byte(keyNodeMapSuperseded)); err != nil {
			return err
		}
		return txn.Set([]byte(keyNodeMap), val)
	})
	if err != nil {
		u.Abort()
		return 0, fmt.Errorf("storage: save node map: %w", err)
	}
	u.release()
	if err := s.syncIfDurable(); err != nil {
		return 0, fmt.Errorf("storage: save node map: %w", err)
	}
	if old != 0 {
		if err := s.deleteChunks(old); err != nil {
			s.log.Warn("chunks of the previous node map left for the sweeper", "upload", old, "err", err)
		}
	}
	return u.size, nil
}

// NodeMapInfo returns the record of the node map kept, without its content, or ErrNotFound.
func (s *Store) NodeMapInfo() (NodeMapRecord, error) {
	var r NodeMapRecord
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		_, r, err = getNodeMap(txn)
		return err
	})
	return r, err
}

// OpenNodeMap returns the record of the node map kept and a reader of its content, both from
// one snapshot; the reader must be closed. It returns ErrNotFound when no map is kept.
func (s *Store) OpenNodeMap() (NodeMapRecord, io.ReadCloser, error) {
	txn := s.db.NewTransaction(false)
	v, r, err := getNodeMap(txn)
	if err != nil {
		txn.Discard()
		return NodeMapRecord{}, nil, err
	}
	if v.V == 1 {
		txn.Discard()
		return r, io.NopCloser(bytes.NewReader(v.Raw)), nil
	}
	return r, newChunkReader(txn, v.Upload, v.Chunks, v.Size), nil
}

// MarkNodeMapSuperseded records that a newer map, with the given digest, is in force since at
// and is not kept (yet): a restart must not route with the kept one. An empty digest clears the
// mark (the map in force is the kept one again); SaveNodeMap clears it too. The mark is a small
// record of its own, synced. It is exempt from the free-space reserve, like the deletes that
// free space (reclaim): it is a few bytes, and a relay whose disk is full is exactly the one
// that cannot keep its new map, so the mark must still be written there, or a restart would
// route with the older map.
func (s *Store) MarkNodeMapSuperseded(digest string, at time.Time) error {
	err := s.reclaim(func(txn *badger.Txn) error {
		if digest == "" {
			return txn.Delete([]byte(keyNodeMapSuperseded))
		}
		val, err := json.Marshal(supersededValue{By: digest, At: at})
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		return txn.Set([]byte(keyNodeMapSuperseded), val)
	})
	if err != nil {
		return fmt.Errorf("storage: mark the kept node map superseded: %w", err)
	}
	return s.syncIfDurable()
}
