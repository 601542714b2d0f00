package envelope

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// arm returns the kind of ev's oneof arm, its message and the address of its envelope field.
func arm(ev *edgepb.EdgeEvent) (Kind, proto.Message, **edgepb.SealNodeEnvelope, error) {
	var k Kind
	var m proto.Message
	switch e := ev.GetEvent().(type) {
	case *edgepb.EdgeEvent_Hello:
		k, m = KindHello, e.Hello
	case *edgepb.EdgeEvent_Heartbeat:
		k, m = KindHeartbeat, e.Heartbeat
	case *edgepb.EdgeEvent_CommandResult:
		k, m = KindCommandResult, e.CommandResult
	case *edgepb.EdgeEvent_CommandProgress:
		k, m = KindCommandProgress, e.CommandProgress
	case *edgepb.EdgeEvent_CapabilityUpdate:
		k, m = KindCapabilityUpdate, e.CapabilityUpdate
	}
	if m == nil || !m.ProtoReflect().IsValid() {
		return 0, nil, nil, fmt.Errorf("%w: edge event has no message", ErrMalformed)
	}
	return k, m, envField(m), nil
}

// KindOf returns the payload kind of ev's oneof arm (Hello → KindHello, ...). It fails
// with ErrMalformed when ev is nil or has no arm set.
func KindOf(ev *edgepb.EdgeEvent) (Kind, error) {
	k, _, _, err := arm(ev)
	return k, err
}

// marshalInner is the deterministic protobuf encoding of the arm's message with its
// envelope unset. The envelope field is cleared during the call and restored after.
func marshalInner(msg proto.Message, env **edgepb.SealNodeEnvelope) ([]byte, error) {
	saved := *env
	*env = nil
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	*env = saved
	if err != nil {
		return nil, fmt.Errorf("envelope: marshal inner message: %w", err)
	}
	return b, nil
}

// Seal fills the envelope of ev's oneof message: the payload has ev's kind, now in
// Unix milliseconds, nodeID, streamID and as inner the deterministic protobuf encoding
// of the message with its envelope unset; the signature is Ed25519(key, payload); the
// token is carried as node_security_token. Any envelope already present is replaced.
// For a Hello, streamID must equal Hello.stream_id. Seal modifies ev (the envelope field
// is cleared while marshalling), so ev must not be used concurrently.
func Seal(key ed25519.PrivateKey, token, nodeID, streamID string, now time.Time, ev *edgepb.EdgeEvent) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("envelope: seal: private key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	k, msg, env, err := arm(ev)
	if err != nil {
		return fmt.Errorf("envelope: seal: %w", err)
	}
	if streamID == "" {
		return fmt.Errorf("envelope: seal %s: %w: empty stream id", k, ErrMalformed)
	}
	if h, ok := msg.(*edgepb.Hello); ok && h.GetStreamId() != streamID {
		return fmt.Errorf("envelope: seal Hello: %w: stream id %q differs from Hello.stream_id %q", ErrInnerMismatch, streamID, h.GetStreamId())
	}
	inner, err := marshalInner(msg, env)
	if err != nil {
		return err
	}
	p := Payload{Kind: k, Timestamp: now, NodeID: nodeID, StreamID: streamID, Inner: inner}
	if err := p.Check(); err != nil {
		return fmt.Errorf("envelope: seal %s: %w", k, err)
	}
	b := p.Encode()
	*env = &edgepb.SealNodeEnvelope{NodeSecurityToken: token, Signature: ed25519.Sign(key, b), Payload: b}
	return nil
}

// verify reports whether sig is a valid signature of msg under one of keys; keys of the
// wrong length are skipped.
func verify(msg, sig []byte, keys []ed25519.PublicKey) bool {
	if len(sig) != ed25519.SignatureSize {
		return false
	}
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, sig) {
			return true
		}
	}
	return false
}

// Open verifies a received event statelessly: its message has an envelope; the payload
// decodes strictly; its kind matches the oneof arm; the stream id is not empty (and equals
// Hello.stream_id for a Hello); the signature is valid under at least one of keys; inner
// decodes into the same message type with no envelope of its own and is proto.Equal to
// the received message with its envelope cleared. ev is not modified.
//
// It returns the payload and the envelope for the caller's stateful checks: the token,
// node id against the token's sub, stream id against the Hello's, timestamp window and
// order. Errors wrap ErrMalformed, ErrKind, ErrSignature or ErrInnerMismatch.
func Open(ev *edgepb.EdgeEvent, keys ...ed25519.PublicKey) (Payload, *edgepb.SealNodeEnvelope, error) {
	k, msg, envp, err := arm(ev)
	if err != nil {
		return Payload{}, nil, fmt.Errorf("envelope: open: %w", err)
	}
	env := *envp
	if env == nil {
		return Payload{}, nil, fmt.Errorf("envelope: open %s: %w: no envelope", k, ErrMalformed)
	}
	p, err := Decode(env.GetPayload())
	if err != nil {
		return Payload{}, nil, fmt.Errorf("envelope: open %s: payload: %w", k, err)
	}
	if p.Kind != k {
		return Payload{}, nil, fmt.Errorf("envelope: open %s: %w: payload kind is %s", k, ErrKind, p.Kind)
	}
	if p.StreamID == "" {
		return Payload{}, nil, fmt.Errorf("envelope: open %s: %w: empty stream id", k, ErrMalformed)
	}
	if !verify(env.GetPayload(), env.GetSignature(), keys) {
		return Payload{}, nil, fmt.Errorf("envelope: open %s: %w", k, ErrSignature)
	}
	got := msg.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(p.Inner, got); err != nil {
		return Payload{}, nil, fmt.Errorf("envelope: open %s: %w: inner does not decode: %w", k, ErrMalformed, err)
	}
	gotEnv := envField(got)
	if *gotEnv != nil {
		return Payload{}, nil, fmt.Errorf("envelope: open %s: %w: inner carries an envelope", k, ErrInnerMismatch)
	}
	// Compare with the received message without touching it: lend it our envelope.
	*gotEnv = env
	equal := proto.Equal(got, msg)
	*gotEnv = nil
	if !equal {
		return Payload{}, nil, fmt.Errorf("envelope: open %s: %w", k, ErrInnerMismatch)
	}
	if h, ok := msg.(*edgepb.Hello); ok && h.GetStreamId() != p.StreamID {
		return Payload{}, nil, fmt.Errorf("envelope: open Hello: %w: payload stream id %q, Hello.stream_id %q", ErrInnerMismatch, p.StreamID, h.GetStreamId())
	}
	return p, env, nil
}

// envField returns the address of the envelope field of one of the five event messages,
// or nil for any other message.
func envField(m proto.Message) **edgepb.SealNodeEnvelope {
	switch m := m.(type) {
	case *edgepb.Hello:
		return &m.Envelope
	case *edgepb.Heartbeat:
		return &m.Envelope
	case *edgepb.CommandResult:
		return &m.Envelope
	case *edgepb.CommandProgress:
		return &m.Envelope
	case *edgepb.CapabilityUpdate:
		return &m.Envelope
	}
	return nil
}
