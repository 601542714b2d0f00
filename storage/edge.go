package storage

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Edge state errors. Every error the edge methods return for these cases wraps one of them
// (ErrNotFound for a missing daemon or challenge).
var (
	// ErrReplayed is returned when an enrolment token id or a rotation nonce was used before.
	ErrReplayed = errors.New("already used")
	// ErrConflict is returned when a record is bound to something else (a node id enrolled
	// for another tenant, a rotation from a key that is no longer current) or when a
	// concurrent transaction changed it first (it then also wraps badger.ErrConflict).
	ErrConflict = errors.New("conflict")
	// ErrRevoked is returned when the daemon concerned has been revoked.
	ErrRevoked = errors.New("daemon revoked")
	// ErrInvalid is returned for arguments the store refuses to record (empty ids, keys of
	// the wrong size, missing expiries, oversized records).
	ErrInvalid = errors.New("invalid argument")
)

const (
	// EdgeKeySize is the size of an Ed25519 public key, the only kind a daemon row holds.
	EdgeKeySize = 32
	// MaxEdgeIDSize bounds node ids, token ids, challenge ids and nonces (in bytes).
	MaxEdgeIDSize = 256
	// MaxDaemonRecordSize bounds an encoded daemon row (capabilities and tags included).
	MaxDaemonRecordSize = 256 << 10
	// MaxChallengeRecordSize bounds an encoded challenge record (capabilities included).
	// Anyone may ask for a challenge: its record must stay small.
	MaxChallengeRecordSize = 16 << 10
	// expiryMargin is kept beyond the expiry asked for redeemed jtis, blacklisted tokens and
	// seen nonces, so a validator allowing some clock leeway past a token's exp still finds
	// them. Keeping them longer costs a few bytes; forgetting them early would allow a replay.
	expiryMargin = 5 * time.Minute
	// lastSeenBatch bounds the rows FlushLastSeen updates in one transaction.
	lastSeenBatch = 256
)

// Daemon is an enrolled edge daemon's durable row.
type Daemon struct {
	NodeID, Tenant, Label string
	// PublicKey is the current Ed25519 key (32 bytes).
	PublicKey []byte
	// PreviousKey is accepted until PreviousUntil (rotation overlap).
	PreviousKey   []byte
	PreviousUntil time.Time
	// TokenID is the jti of the current NodeSecurityToken, valid until TokenExpiry.
	TokenID     string
	TokenExpiry time.Time
	// Capabilities is opaque to the store (protobuf EdgeCapabilities from the edge package).
	Capabilities []byte
	// Tags are server-managed only.
	Tags       map[string]string
	Revoked    bool
	RevokedAt  time.Time
	EnrolledAt time.Time
	LastSeen   time.Time
}

// Challenge is a pending attestation challenge: who asked, with which key, and the nonce the
// daemon must sign before Expires.
type Challenge struct {
	ID, NodeID, Role string
	PublicKey        []byte
	Nonce            []byte
	Capabilities     []byte
	SourceIP         string
	Expires          time.Time
	// Issued is when the challenge was issued. Pool, Network and Quota say which share
	// of the pending challenges it holds; they are opaque to the store, kept so that the
	// caller can count the pending challenges again after a restart (see Challenges).
	Issued               time.Time
	Pool, Network, Quota string
}

// daemonRecord is Daemon's stored form (version 1). Times are Unix nanoseconds, 0 for none.
type daemonRecord struct {
	V             int               `json:"v"`
	NodeID        string            `json:"node_id"`
	Tenant        string            `json:"tenant"`
	Label         string            `json:"label,omitempty"`
	PublicKey     []byte            `json:"public_key"`
	PreviousKey   []byte            `json:"previous_key,omitempty"`
	PreviousUntil int64             `json:"previous_until,omitempty"`
	TokenID       string            `json:"token_id,omitempty"`
	TokenExpiry   int64             `json:"token_expiry,omitempty"`
	Capabilities  []byte            `json:"capabilities,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
	Revoked       bool              `json:"revoked,omitempty"`
	RevokedAt     int64             `json:"revoked_at,omitempty"`
	EnrolledAt    int64             `json:"enrolled_at,omitempty"`
	LastSeen      int64             `json:"last_seen,omitempty"`
}

// challengeRecord is Challenge's stored form (version 1).
type challengeRecord struct {
	V            int    `json:"v"`
	ID           string `json:"id"`
	NodeID       string `json:"node_id"`
	Role         string `json:"role"`
	PublicKey    []byte `json:"public_key"`
	Nonce        []byte `json:"nonce"`
	Capabilities []byte `json:"capabilities,omitempty"`
	SourceIP     string `json:"source_ip,omitempty"`
	Expires      int64  `json:"expires"`
	Issued       int64  `json:"issued,omitempty"`
	Pool         string `json:"pool,omitempty"`
	Network      string `json:"network,omitempty"`
	Quota        string `json:"quota,omitempty"`
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func checkID(kind, id string) error {
	if id == "" || len(id) > MaxEdgeIDSize {
		return fmt.Errorf("%s %q: must be 1 to %d bytes: %w", kind, id, MaxEdgeIDSize, ErrInvalid)
	}
	return nil
}

func checkKey(kind string, key []byte, optional bool) error {
	if len(key) == EdgeKeySize || (optional && len(key) == 0) {
		return nil
	}
	return fmt.Errorf("%s is %d bytes, want %d: %w", kind, len(key), EdgeKeySize, ErrInvalid)
}

func validateDaemon(d Daemon) error {
	if err := checkID("node id", d.NodeID); err != nil {
		return err
	}
	if d.Tenant == "" {
		return fmt.Errorf("daemon %s: empty tenant: %w", d.NodeID, ErrInvalid)
	}
	if err := checkKey("public key", d.PublicKey, false); err != nil {
		return fmt.Errorf("daemon %s: %w", d.NodeID, err)
	}
	if err := checkKey("previous key", d.PreviousKey, true); err != nil {
		return fmt.Errorf("daemon %s: %w", d.NodeID, err)
	}
	return nil
}

func encodeDaemon(d Daemon) ([]byte, error) {
	if err := validateDaemon(d); err != nil {
		return nil, err
	}
	b, err := json.Marshal(daemonRecord{
		V: 1, NodeID: d.NodeID, Tenant: d.Tenant, Label: d.Label,
		PublicKey: d.PublicKey, PreviousKey: d.PreviousKey, PreviousUntil: nanos(d.PreviousUntil),
		TokenID: d.TokenID, TokenExpiry: nanos(d.TokenExpiry), Capabilities: d.Capabilities,
		Tags: d.Tags, Revoked: d.Revoked, RevokedAt: nanos(d.RevokedAt),
		EnrolledAt: nanos(d.EnrolledAt), LastSeen: nanos(d.LastSeen),
	})
	if err != nil {
		return nil, fmt.Errorf("daemon %s: encode: %w", d.NodeID, err)
	}
	if len(b) > MaxDaemonRecordSize {
		return nil, fmt.Errorf("daemon %s: record is %d bytes, at most %d: %w", d.NodeID, len(b), MaxDaemonRecordSize, ErrInvalid)
	}
	return b, nil
}

// decodeDaemon decodes and checks a stored daemon row.
func decodeDaemon(b []byte) (Daemon, error) {
	var r daemonRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return Daemon{}, fmt.Errorf("corrupt daemon record: %w", err)
	}
	if r.V != 1 {
		return Daemon{}, fmt.Errorf("daemon record: unknown record version %d", r.V)
	}
	d := Daemon{
		NodeID: r.NodeID, Tenant: r.Tenant, Label: r.Label,
		PublicKey: r.PublicKey, PreviousKey: r.PreviousKey, PreviousUntil: fromNanos(r.PreviousUntil),
		TokenID: r.TokenID, TokenExpiry: fromNanos(r.TokenExpiry), Capabilities: r.Capabilities,
		Tags: r.Tags, Revoked: r.Revoked, RevokedAt: fromNanos(r.RevokedAt),
		EnrolledAt: fromNanos(r.EnrolledAt), LastSeen: fromNanos(r.LastSeen),
	}
	if err := validateDaemon(d); err != nil {
		return Daemon{}, fmt.Errorf("corrupt daemon record: %w", err)
	}
	return d, nil
}

// encodeChallenge checks and encodes a challenge record; an oversized one is ErrInvalid.
func encodeChallenge(c Challenge, now time.Time) ([]byte, error) {
	if err := checkID("challenge id", c.ID); err != nil {
		return nil, err
	}
	if !c.Expires.After(now) {
		return nil, fmt.Errorf("expiry %s is not in the future: %w", c.Expires, ErrInvalid)
	}
	// A record much larger than the bound is refused before it is encoded (base64 makes
	// the bytes a third larger).
	raw := len(c.ID) + len(c.NodeID) + len(c.Role) + len(c.PublicKey) + len(c.Nonce) + len(c.Capabilities) +
		len(c.SourceIP) + len(c.Pool) + len(c.Network) + len(c.Quota)
	if raw > MaxChallengeRecordSize {
		return nil, fmt.Errorf("record of more than %d bytes, at most %d: %w", raw, MaxChallengeRecordSize, ErrInvalid)
	}
	b, err := json.Marshal(challengeRecord{
		V: 1, ID: c.ID, NodeID: c.NodeID, Role: c.Role, PublicKey: c.PublicKey, Nonce: c.Nonce,
		Capabilities: c.Capabilities, SourceIP: c.SourceIP, Expires: nanos(c.Expires),
		Issued: nanos(c.Issued), Pool: c.Pool, Network: c.Network, Quota: c.Quota,
	})
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	if len(b) > MaxChallengeRecordSize {
		return nil, fmt.Errorf("record of %d bytes, at most %d: %w", len(b), MaxChallengeRecordSize, ErrInvalid)
	}
	return b, nil
}

func decodeChallenge(b []byte) (Challenge, error) {
	var r challengeRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return Challenge{}, fmt.Errorf("corrupt challenge record: %w", err)
	}
	if r.V != 1 {
		return Challenge{}, fmt.Errorf("challenge record: unknown record version %d", r.V)
	}
	if r.ID == "" || r.Expires == 0 {
		return Challenge{}, errors.New("corrupt challenge record: no id or expiry")
	}
	return Challenge{
		ID: r.ID, NodeID: r.NodeID, Role: r.Role, PublicKey: r.PublicKey, Nonce: r.Nonce,
		Capabilities: r.Capabilities, SourceIP: r.SourceIP, Expires: fromNanos(r.Expires),
		Issued: fromNanos(r.Issued), Pool: r.Pool, Network: r.Network, Quota: r.Quota,
	}, nil
}

func daemonKey(nodeID string) []byte   { return []byte(prefixDaemon + nodeID) }
func jtiKey(jti string) []byte         { return []byte(prefixJTI + jti) }
func blacklistKey(id string) []byte    { return []byte(prefixBlacklist + id) }
func challengeKey(id string) []byte    { return []byte(prefixChallenge + id) }
func nonceKey(nonce []byte) []byte     { return []byte(prefixNonce + hex.EncodeToString(nonce)) }
func expiryOf(until time.Time) uint64  { return uint64(until.Add(time.Second - 1).Unix()) } // rounded up
func keepUntil(t time.Time) time.Time  { return t.Add(expiryMargin) }
func isMissing(err error) bool         { return errors.Is(err, badger.ErrKeyNotFound) }
func wrapConflict(err error) error     { return fmt.Errorf("%w (%w)", ErrConflict, err) }
func stillValid(t, now time.Time) bool { return !t.IsZero() && t.After(now) }

// setUntil writes a marker that Badger drops by itself at until (rounded up to the second).
// A marker whose time has already passed is not written: it would be invisible at once.
func setUntil(txn *badger.Txn, key []byte, val []byte, until, now time.Time) error {
	if !until.After(now) {
		return nil
	}
	e := badger.NewEntry(key, val)
	e.ExpiresAt = expiryOf(until)
	return txn.SetEntry(e)
}

// present reports whether key exists (and has not expired) in txn.
func present(txn *badger.Txn, key []byte) (bool, error) {
	_, err := txn.Get(key)
	if isMissing(err) {
		return false, nil
	}
	return err == nil, err
}

func getDaemon(txn *badger.Txn, nodeID string) (Daemon, error) {
	item, err := txn.Get(daemonKey(nodeID))
	if isMissing(err) {
		return Daemon{}, fmt.Errorf("daemon %s: %w", nodeID, ErrNotFound)
	}
	if err != nil {
		return Daemon{}, err
	}
	var d Daemon
	err = item.Value(func(b []byte) error {
		d, err = decodeDaemon(b)
		return err
	})
	if err != nil {
		return Daemon{}, fmt.Errorf("daemon %s: %w", nodeID, err)
	}
	if d.NodeID != nodeID {
		return Daemon{}, fmt.Errorf("daemon %s: corrupt record names node %q", nodeID, d.NodeID)
	}
	return d, nil
}

func putDaemon(txn *badger.Txn, d Daemon) error {
	val, err := encodeDaemon(d)
	if err != nil {
		return err
	}
	return txn.Set(daemonKey(d.NodeID), val)
}

// AdmitChallenge stores a pending challenge until c.Expires (Badger drops it by itself then)
// and deletes the pending challenges whose ids are in evict, in the same transaction: either
// both happen or neither. It fails with ErrConflict when a challenge with c's id is pending, and
// with ErrInvalid for a record it refuses (no id, an expiry already passed, more than
// MaxChallengeRecordSize bytes, c evicting itself). It counts nothing: the caller bounds the
// pending challenges (evicting some to make room) and can count them again after a restart
// with Challenges. Evicting an id that is not pending is not an error. A pending challenge is
// not synced: one lost in a crash only makes its daemon attest again.
func (s *Store) AdmitChallenge(c Challenge, evict []string) error {
	for _, id := range evict {
		if err := checkID("evicted challenge id", id); err != nil {
			return fmt.Errorf("storage: put challenge %s: %w", c.ID, err)
		}
		if id == c.ID {
			return fmt.Errorf("storage: put challenge %s: it evicts itself: %w", c.ID, ErrInvalid)
		}
	}
	now := time.Now()
	val, err := encodeChallenge(c, now)
	if err != nil {
		return fmt.Errorf("storage: put challenge %s: %w", c.ID, err)
	}
	err = s.updateSized(int64(len(val)), func(txn *badger.Txn) error {
		exists, err := present(txn, challengeKey(c.ID))
		if err != nil {
			return err
		}
		if exists {
			return fmt.Errorf("id already pending: %w", ErrConflict)
		}
		for _, id := range evict {
			if err := txn.Delete(challengeKey(id)); err != nil {
				return fmt.Errorf("evict %s: %w", id, err)
			}
		}
		return setUntil(txn, challengeKey(c.ID), val, c.Expires, now)
	})
	if err != nil {
		return fmt.Errorf("storage: put challenge %s: %w", c.ID, err)
	}
	return nil
}

// TakeChallenge reads and deletes a challenge in one transaction, so it is used at most once.
// It fails with ErrNotFound when the challenge is missing, already taken, or expired at now.
func (s *Store) TakeChallenge(id string, now time.Time) (Challenge, error) {
	var c Challenge
	var expired bool
	err := s.reclaim(func(txn *badger.Txn) error {
		expired = false
		item, err := txn.Get(challengeKey(id))
		if isMissing(err) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := item.Value(func(b []byte) error {
			c, err = decodeChallenge(b)
			return err
		}); err != nil {
			return err
		}
		expired = !c.Expires.After(now)
		return txn.Delete(challengeKey(id))
	})
	if err == nil && expired {
		err = fmt.Errorf("expired at %s: %w", c.Expires.Format(time.RFC3339), ErrNotFound)
	}
	if err != nil {
		return Challenge{}, fmt.Errorf("storage: take challenge %s: %w", id, err)
	}
	// Single use must survive a crash.
	if err := s.syncIfDurable(); err != nil {
		return Challenge{}, err
	}
	return c, nil
}

// PendingChallenges counts the challenges not yet taken nor expired at now (those that do
// not decode included: they are pending too, until Badger drops them).
func (s *Store) PendingChallenges(now time.Time) (int, error) {
	pending, skipped, err := s.Challenges(now)
	return len(pending) + skipped, err
}

// Challenges returns the challenges pending at now (not taken, not expired), oldest issued
// first (by expiry when they have no issue time), so that a caller keeping its own count of
// them (AdmitChallenge) can start again from the store after a restart. A record that does
// not decode is left out and counted in skipped: such a record cannot be taken either, and
// Badger drops it at its expiry.
func (s *Store) Challenges(now time.Time) (pending []Challenge, skipped int, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		pending, skipped = nil, 0
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixChallenge)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var c Challenge
			err := it.Item().Value(func(b []byte) error {
				var err error
				c, err = decodeChallenge(b)
				return err
			})
			if err != nil {
				skipped++
				continue
			}
			if c.Expires.After(now) {
				pending = append(pending, c)
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("storage: list pending challenges: %w", err)
	}
	slices.SortStableFunc(pending, func(a, b Challenge) int {
		if c := a.Issued.Compare(b.Issued); c != 0 {
			return c
		}
		return a.Expires.Compare(b.Expires)
	})
	return pending, skipped, nil
}

// Enroll redeems jti and stores d, in one synced transaction. It fails with ErrReplayed when
// jti was redeemed before, with ErrConflict when d.NodeID is enrolled for another tenant, and
// with ErrRevoked when d.NodeID was revoked; nothing is written then (the jti stays
// unredeemed). jtiExpiry (the token's exp) bounds how long the jti is kept.
//
// Enrolling a node id again for the same tenant replaces its row, except that the tags
// (server-managed) are kept when d.Tags is nil; the previous row's token, if still valid and
// not d's, is blacklisted until its expiry.
func (s *Store) Enroll(jti string, jtiExpiry time.Time, d Daemon) error {
	if err := checkID("jti", jti); err != nil {
		return fmt.Errorf("storage: enroll: %w", err)
	}
	if jtiExpiry.IsZero() {
		return fmt.Errorf("storage: enroll %s: no jti expiry: %w", d.NodeID, ErrInvalid)
	}
	if err := validateDaemon(d); err != nil {
		return fmt.Errorf("storage: enroll: %w", err)
	}
	now := time.Now()
	err := s.update(func(txn *badger.Txn) error {
		row := d
		redeemed, err := present(txn, jtiKey(jti))
		if err != nil {
			return err
		}
		if redeemed {
			return fmt.Errorf("enrolment token %s: %w", jti, ErrReplayed)
		}
		old, err := getDaemon(txn, d.NodeID)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		case old.Tenant != d.Tenant:
			return fmt.Errorf("node id is enrolled for another tenant: %w", ErrConflict)
		case old.Revoked:
			return fmt.Errorf("node id was revoked at %s: %w", old.RevokedAt.Format(time.RFC3339), ErrRevoked)
		default:
			if row.Tags == nil {
				row.Tags = old.Tags
			}
			if old.TokenID != "" && old.TokenID != d.TokenID && stillValid(old.TokenExpiry, now) {
				if err := setUntil(txn, blacklistKey(old.TokenID), nil, keepUntil(old.TokenExpiry), now); err != nil {
					return err
				}
			}
		}
		if err := setUntil(txn, jtiKey(jti), nil, keepUntil(jtiExpiry), now); err != nil {
			return err
		}
		return putDaemon(txn, row)
	})
	if err != nil {
		return fmt.Errorf("storage: enroll %s: %w", d.NodeID, err)
	}
	return s.syncIfDurable()
}

// Daemon returns a daemon's row, or ErrNotFound.
func (s *Store) Daemon(nodeID string) (Daemon, error) {
	var d Daemon
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		d, err = getDaemon(txn, nodeID)
		return err
	})
	if err != nil {
		return Daemon{}, fmt.Errorf("storage: %w", err)
	}
	return d, nil
}

// Daemons returns every daemon row (revoked ones included), sorted by node id.
func (s *Store) Daemons() ([]Daemon, error) {
	var ds []Daemon
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixDaemon)})
		defer it.Close()
		// Badger iterates in key order, and the node id is the whole rest of the key.
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().Key()
			var d Daemon
			err := it.Item().Value(func(b []byte) error {
				var err error
				d, err = decodeDaemon(b)
				return err
			})
			if err != nil {
				return fmt.Errorf("daemon %q: %w", key[len(prefixDaemon):], err)
			}
			ds = append(ds, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: list daemons: %w", err)
	}
	return ds, nil
}

// UpdateDaemon runs fn on the daemon's row in a read-write transaction and stores the result
// (synced). It fails with ErrNotFound when there is no row; fn may return an error to abort,
// and may run more than once when a concurrent writer forces a retry. fn must not change the
// node id.
func (s *Store) UpdateDaemon(nodeID string, fn func(*Daemon) error) error {
	err := s.update(func(txn *badger.Txn) error {
		d, err := getDaemon(txn, nodeID)
		if err != nil {
			return err
		}
		if err := fn(&d); err != nil {
			return err
		}
		if d.NodeID != nodeID {
			return fmt.Errorf("daemon %s: the update changed the node id to %q: %w", nodeID, d.NodeID, ErrInvalid)
		}
		return putDaemon(txn, d)
	})
	if err != nil {
		return fmt.Errorf("storage: update daemon %s: %w", nodeID, err)
	}
	return s.syncIfDurable()
}

// RotateKey replaces a daemon's key, in one synced transaction. It fails with ErrNotFound
// when there is no row, ErrRevoked when it is revoked, ErrReplayed when nonce was seen before,
// ErrConflict when oldKey is no longer the current key or a concurrent transaction changed the
// row first (no retry: of two concurrent rotations exactly one wins). Then it keeps oldKey as
// the previous key until overlapUntil, makes newKey current with the new token id and expiry,
// blacklists the old token until its expiry, and remembers nonce until keepNonceUntil.
func (s *Store) RotateKey(nodeID string, oldKey, newKey []byte, overlapUntil time.Time, nonce []byte,
	keepNonceUntil time.Time, newTokenID string, newTokenExpiry time.Time) error {
	wrap := func(err error) error { return fmt.Errorf("storage: rotate key of %s: %w", nodeID, err) }
	if err := checkRotation(oldKey, newKey, nonce, keepNonceUntil, newTokenID); err != nil {
		return wrap(err)
	}
	now := time.Now()
	done, err := s.admit(grows, 0)
	if err != nil {
		return wrap(err)
	}
	defer done()
	s.writeMu.RLock()
	err = s.db.Update(func(txn *badger.Txn) error {
		d, err := getDaemon(txn, nodeID)
		if err != nil {
			return err
		}
		if d.Revoked {
			return ErrRevoked
		}
		seen, err := present(txn, nonceKey(nonce))
		if err != nil {
			return err
		}
		if seen {
			return fmt.Errorf("rotation nonce: %w", ErrReplayed)
		}
		if string(d.PublicKey) != string(oldKey) {
			return fmt.Errorf("the old key is not the current key: %w", ErrConflict)
		}
		if d.TokenID != "" && d.TokenID != newTokenID {
			if err := setUntil(txn, blacklistKey(d.TokenID), nil, keepUntil(d.TokenExpiry), now); err != nil {
				return err
			}
		}
		if err := setUntil(txn, nonceKey(nonce), nil, keepUntil(keepNonceUntil), now); err != nil {
			return err
		}
		d.PreviousKey, d.PreviousUntil = oldKey, overlapUntil
		d.PublicKey = newKey
		d.TokenID, d.TokenExpiry = newTokenID, newTokenExpiry
		return putDaemon(txn, d)
	})
	s.writeMu.RUnlock()
	if errors.Is(err, badger.ErrConflict) {
		err = fmt.Errorf("concurrent update: %w", wrapConflict(err))
	}
	if err != nil {
		return wrap(err)
	}
	return s.syncIfDurable()
}

func checkRotation(oldKey, newKey, nonce []byte, keepNonceUntil time.Time, newTokenID string) error {
	if err := checkKey("old key", oldKey, false); err != nil {
		return err
	}
	if err := checkKey("new key", newKey, false); err != nil {
		return err
	}
	switch {
	case string(oldKey) == string(newKey):
		return fmt.Errorf("the new key is the old key: %w", ErrInvalid)
	case len(nonce) == 0 || 2*len(nonce) > MaxEdgeIDSize:
		return fmt.Errorf("nonce of %d bytes: must be 1 to %d: %w", len(nonce), MaxEdgeIDSize/2, ErrInvalid)
	case keepNonceUntil.IsZero():
		return fmt.Errorf("no nonce expiry: %w", ErrInvalid)
	}
	return checkID("new token id", newTokenID)
}

// Blacklist refuses tokenID until until (its expiry), synced.
func (s *Store) Blacklist(tokenID string, until time.Time) error {
	if err := checkID("token id", tokenID); err != nil {
		return fmt.Errorf("storage: blacklist: %w", err)
	}
	if until.IsZero() {
		return fmt.Errorf("storage: blacklist %s: no expiry: %w", tokenID, ErrInvalid)
	}
	now := time.Now()
	if err := s.update(func(txn *badger.Txn) error {
		return setUntil(txn, blacklistKey(tokenID), nil, keepUntil(until), now)
	}); err != nil {
		return fmt.Errorf("storage: blacklist %s: %w", tokenID, err)
	}
	return s.syncIfDurable()
}

// IsBlacklisted reports whether tokenID is blacklisted (and its blacklisting not yet expired).
func (s *Store) IsBlacklisted(tokenID string) (bool, error) {
	var found bool
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		found, err = present(txn, blacklistKey(tokenID))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("storage: blacklist lookup %s: %w", tokenID, err)
	}
	return found, nil
}

// Revoke marks the daemon revoked at now and blacklists its current token until its expiry,
// in one synced transaction, and returns the updated row. Revoking a revoked daemon changes
// nothing and returns its row. It fails with ErrNotFound when there is no row.
func (s *Store) Revoke(nodeID string, now time.Time) (Daemon, error) {
	var d Daemon
	err := s.update(func(txn *badger.Txn) error {
		var err error
		d, err = getDaemon(txn, nodeID)
		if err != nil || d.Revoked {
			return err
		}
		d.Revoked, d.RevokedAt = true, now
		if d.TokenID != "" {
			if err := setUntil(txn, blacklistKey(d.TokenID), nil, keepUntil(d.TokenExpiry), time.Now()); err != nil {
				return err
			}
		}
		return putDaemon(txn, d)
	})
	if err != nil {
		return Daemon{}, fmt.Errorf("storage: revoke %s: %w", nodeID, err)
	}
	return d, s.syncIfDurable()
}

// FlushLastSeen stores the in-memory last-seen times, in as few transactions as Badger
// allows (256 rows each at most). Unknown nodes are skipped, and a time older than the
// stored one does not replace it.
func (s *Store) FlushLastSeen(seen map[string]time.Time) error {
	ids := slices.Sorted(maps.Keys(seen))
	for start := 0; start < len(ids); {
		next := start
		err := s.update(func(txn *badger.Txn) error {
			next = start
			for ; next < len(ids) && next-start < lastSeenBatch; next++ {
				d, err := getDaemon(txn, ids[next])
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				t := seen[ids[next]]
				if !t.After(d.LastSeen) {
					continue
				}
				d.LastSeen = t
				err = putDaemon(txn, d)
				if errors.Is(err, badger.ErrTxnTooBig) && next > start {
					return nil // commit what fits; the rest goes in the next transaction
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("storage: flush last-seen times: %w", err)
		}
		start = next
	}
	return s.syncIfDurable()
}

// maxSigningKey bounds the signing key copy: a PEM Ed25519 key is about 120 bytes.
const maxSigningKey = 16 << 10

// SetSigningKey keeps a copy of the relay's edge signing key (PEM) in the store, so that a
// backup carries it. The key's file in the data directory stays the one the relay uses; a
// restore writes the copy back to it. Writing the same bytes again is a no-op. The write is
// not synced: the copy matters only to the backup that follows it in the same process.
func (s *Store) SetSigningKey(pemBytes []byte) error {
	if len(pemBytes) == 0 || len(pemBytes) > maxSigningKey {
		return fmt.Errorf("storage: signing key copy of %d bytes (want 1 to %d)", len(pemBytes), maxSigningKey)
	}
	if cur, err := s.SigningKey(); err == nil && bytes.Equal(cur, pemBytes) {
		return nil
	}
	if err := s.update(func(txn *badger.Txn) error {
		return txn.Set([]byte(keySigningKey), pemBytes)
	}); err != nil {
		return fmt.Errorf("storage: keep the signing key: %w", err)
	}
	return nil
}

// SigningKey returns the copy of the edge signing key kept by SetSigningKey, or an error
// wrapping ErrNotFound when the store holds none.
func (s *Store) SigningKey() ([]byte, error) {
	var b []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keySigningKey))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		b, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: signing key: %w", err)
	}
	return b, nil
}
