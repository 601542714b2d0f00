package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Kind is the first byte of a payload: which message the envelope seals.
type Kind uint8

// The payload kinds of SPEC-edge-grpc.md.
const (
	KindHello            Kind = 1
	KindHeartbeat        Kind = 2
	KindCommandResult    Kind = 3
	KindCommandProgress  Kind = 4
	KindCapabilityUpdate Kind = 5
	KindRotate           Kind = 6
)

// Bounds enforced by [Decode] (and by [Seal] and [SealRotate] before signing).
const (
	// MaxID is the longest node id or stream id, in bytes.
	MaxID = 256
	// MaxInner is the longest inner field, in bytes (gRPC's default message limit).
	MaxInner = 4 << 20
	// headerLen is kind + timestamp + the three u32 lengths.
	headerLen = 1 + 8 + 4 + 4 + 4
)

// Sentinel errors; every error of this package wraps one of them (test with errors.Is).
var (
	// ErrMalformed: a payload, inner field or envelope that does not parse or breaks a bound.
	ErrMalformed = errors.New("envelope: malformed")
	// ErrKind: an unknown kind byte, or a kind that does not match the message it seals.
	ErrKind = errors.New("envelope: wrong kind")
	// ErrSignature: the envelope's signature (the old key's, for a rotation) is not valid
	// under any of the given keys.
	ErrSignature = errors.New("envelope: bad signature")
	// ErrNewKeySignature: a rotation's signature_with_new_key does not verify under the
	// new key (no proof of possession).
	ErrNewKeySignature = errors.New("envelope: bad new-key signature")
	// ErrInnerMismatch: the signed inner field does not describe the received message.
	ErrInnerMismatch = errors.New("envelope: inner does not match message")
)

// String names the kind as in the spec ("Hello", ...), or "Kind(n)" for unknown values.
func (k Kind) String() string {
	switch k {
	case KindHello:
		return "Hello"
	case KindHeartbeat:
		return "Heartbeat"
	case KindCommandResult:
		return "CommandResult"
	case KindCommandProgress:
		return "CommandProgress"
	case KindCapabilityUpdate:
		return "CapabilityUpdate"
	case KindRotate:
		return "Rotate"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Valid reports whether k is one of the six known kinds.
func (k Kind) Valid() bool { return k >= KindHello && k <= KindRotate }

// Payload is the decoded form of the canonical payload an envelope signs.
type Payload struct {
	// Kind says which message is sealed.
	Kind Kind
	// Timestamp is the sender's clock, with millisecond precision (finer parts are
	// dropped by Encode; Decode returns UTC).
	Timestamp time.Time
	// NodeID is the sending node (must equal the token's sub).
	NodeID string
	// StreamID is the stream's id from its Hello; empty for Rotate.
	StreamID string
	// Inner is the sealed content: the message without envelope, or key ‖ nonce.
	Inner []byte
}

// Encode returns the canonical byte string of p. It does not check bounds; Seal and
// SealRotate do (see [Payload.Check]) and Decode refuses what breaks them.
func (p Payload) Encode() []byte {
	b := make([]byte, 0, headerLen+len(p.NodeID)+len(p.StreamID)+len(p.Inner))
	b = append(b, byte(p.Kind))
	b = binary.LittleEndian.AppendUint64(b, uint64(p.Timestamp.UnixMilli()))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p.NodeID)))
	b = append(b, p.NodeID...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p.StreamID)))
	b = append(b, p.StreamID...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p.Inner)))
	b = append(b, p.Inner...)
	return b
}

// Check reports whether p is within the bounds Decode enforces: a known kind, a
// non-empty node id, ids of at most MaxID bytes of valid UTF-8, inner of at most
// MaxInner bytes.
func (p Payload) Check() error {
	if !p.Kind.Valid() {
		return fmt.Errorf("%w: unknown kind %d", ErrKind, uint8(p.Kind))
	}
	if err := checkID("node id", p.NodeID); err != nil {
		return err
	}
	if p.NodeID == "" {
		return fmt.Errorf("%w: empty node id", ErrMalformed)
	}
	if err := checkID("stream id", p.StreamID); err != nil {
		return err
	}
	if len(p.Inner) > MaxInner {
		return fmt.Errorf("%w: inner is %d bytes, limit %d", ErrMalformed, len(p.Inner), MaxInner)
	}
	return nil
}

func checkID(what, s string) error {
	if len(s) > MaxID {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrMalformed, what, len(s), MaxID)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrMalformed, what)
	}
	return nil
}

// Decode parses a canonical payload strictly: a known kind, exact lengths, no trailing
// bytes, the bounds of [Payload.Check]. Inner aliases b.
func Decode(b []byte) (Payload, error) {
	var p Payload
	if len(b) < headerLen {
		return p, fmt.Errorf("%w: payload is %d bytes, shorter than the %d-byte minimum", ErrMalformed, len(b), headerLen)
	}
	p.Kind = Kind(b[0])
	if !p.Kind.Valid() {
		return Payload{}, fmt.Errorf("%w: unknown kind %d", ErrKind, b[0])
	}
	p.Timestamp = time.UnixMilli(int64(binary.LittleEndian.Uint64(b[1:9]))).UTC()
	rest := b[9:]
	var err error
	var nodeID, streamID []byte
	if nodeID, rest, err = field(rest, "node id", MaxID); err != nil {
		return Payload{}, err
	}
	if streamID, rest, err = field(rest, "stream id", MaxID); err != nil {
		return Payload{}, err
	}
	if p.Inner, rest, err = field(rest, "inner", MaxInner); err != nil {
		return Payload{}, err
	}
	if len(rest) != 0 {
		return Payload{}, fmt.Errorf("%w: %d trailing bytes after inner", ErrMalformed, len(rest))
	}
	p.NodeID, p.StreamID = string(nodeID), string(streamID)
	if err := p.Check(); err != nil {
		return Payload{}, err
	}
	return p, nil
}

// field reads a u32 length and that many bytes from b.
func field(b []byte, what string, limit uint32) (val, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, fmt.Errorf("%w: truncated before the length of %s", ErrMalformed, what)
	}
	n := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if n > limit {
		return nil, nil, fmt.Errorf("%w: %s length %d over the limit %d", ErrMalformed, what, n, limit)
	}
	if uint64(n) > uint64(len(b)) {
		return nil, nil, fmt.Errorf("%w: %s length %d but only %d bytes left", ErrMalformed, what, n, len(b))
	}
	return b[:n:n], b[n:], nil
}
