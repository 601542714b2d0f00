package envelope

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// NonceSize is the length of a rotation nonce.
const NonceSize = 32

// rotateDomain separates rotation proofs from every other use of a node key.
const rotateDomain = "keel-edge-rotate"

// NewNonce returns NonceSize random bytes for SealRotate.
func NewNonce() []byte {
	n := make([]byte, NonceSize)
	_, _ = rand.Read(n) // never fails (crypto/rand, Go 1.24+)
	return n
}

// RotateDigest is SHA-256("keel-edge-rotate" ‖ node_id ‖ new_public_key ‖ nonce), the
// message the new key signs as signature_with_new_key.
func RotateDigest(nodeID string, newPub ed25519.PublicKey, nonce []byte) []byte {
	h := sha256.New()
	h.Write([]byte(rotateDomain))
	h.Write([]byte(nodeID))
	h.Write(newPub)
	h.Write(nonce)
	return h.Sum(nil)
}

// SealRotate builds a RotateEdgeKeyRequest: current_envelope has kind Rotate, an empty
// stream id and inner = new public key ‖ nonce, signed with oldKey and carrying token;
// signature_with_new_key is Ed25519(newKey, RotateDigest(nodeID, new public key, nonce)).
// nonce must be NonceSize bytes (see NewNonce).
func SealRotate(oldKey, newKey ed25519.PrivateKey, token, nodeID string, nonce []byte, now time.Time) (*edgepb.RotateEdgeKeyRequest, error) {
	if len(oldKey) != ed25519.PrivateKeySize || len(newKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("envelope: seal rotate: private keys are %d and %d bytes, want %d", len(oldKey), len(newKey), ed25519.PrivateKeySize)
	}
	if len(nonce) != NonceSize {
		return nil, fmt.Errorf("envelope: seal rotate: %w: nonce is %d bytes, want %d", ErrMalformed, len(nonce), NonceSize)
	}
	newPub := newKey.Public().(ed25519.PublicKey)
	if bytes.Equal(newPub, oldKey.Public().(ed25519.PublicKey)) {
		return nil, fmt.Errorf("envelope: seal rotate: %w: new key equals the old key", ErrMalformed)
	}
	inner := make([]byte, 0, ed25519.PublicKeySize+NonceSize)
	inner = append(append(inner, newPub...), nonce...)
	p := Payload{Kind: KindRotate, Timestamp: now, NodeID: nodeID, Inner: inner}
	if err := p.Check(); err != nil {
		return nil, fmt.Errorf("envelope: seal rotate: %w", err)
	}
	b := p.Encode()
	return &edgepb.RotateEdgeKeyRequest{
		CurrentEnvelope:     &edgepb.SealNodeEnvelope{NodeSecurityToken: token, Signature: ed25519.Sign(oldKey, b), Payload: b},
		NewPublicKey:        bytes.Clone(newPub),
		SignatureWithNewKey: ed25519.Sign(newKey, RotateDigest(nodeID, newPub, nonce)),
	}, nil
}

// OpenRotate verifies a RotateEdgeKeyRequest statelessly: the envelope's payload decodes
// with kind Rotate and an empty stream id; inner is exactly a 32-byte key and a 32-byte
// nonce; the request's new_public_key equals inner's and is not one of oldKeys; the
// envelope signature is valid under one of oldKeys (ErrSignature); signature_with_new_key
// is valid under the new key (ErrNewKeySignature). It returns the payload, the new key
// and the nonce; the caller checks the token, the node id against its sub, the
// timestamp and that the nonce is fresh.
func OpenRotate(req *edgepb.RotateEdgeKeyRequest, oldKeys ...ed25519.PublicKey) (p Payload, newKey ed25519.PublicKey, nonce []byte, err error) {
	env := req.GetCurrentEnvelope()
	if env == nil {
		return Payload{}, nil, nil, fmt.Errorf("envelope: open rotate: %w: no current_envelope", ErrMalformed)
	}
	if p, err = Decode(env.GetPayload()); err != nil {
		return Payload{}, nil, nil, fmt.Errorf("envelope: open rotate: payload: %w", err)
	}
	if p.Kind != KindRotate {
		return Payload{}, nil, nil, fmt.Errorf("envelope: open rotate: %w: payload kind is %s", ErrKind, p.Kind)
	}
	if p.StreamID != "" {
		return Payload{}, nil, nil, fmt.Errorf("envelope: open rotate: %w: stream id must be empty", ErrMalformed)
	}
	if len(p.Inner) != ed25519.PublicKeySize+NonceSize {
		return Payload{}, nil, nil, fmt.Errorf("envelope: open rotate: %w: inner is %d bytes, want %d (key ‖ nonce)", ErrMalformed, len(p.Inner), ed25519.PublicKeySize+NonceSize)
	}
	if n := len(req.GetNewPublicKey()); n != ed25519.PublicKeySize {
		return Payload{}, nil, nil, fmt.Errorf("envelope: open rotate: %w: new_public_key is %d bytes, want %d", ErrMalformed, n, ed25519.PublicKeySize)
	}
	innerKey, innerNonce := p.Inner[:ed25519.PublicKeySize], p.Inner[ed25519.PublicKeySize:]
	if !bytes.Equal(innerKey, req.GetNewPublicKey()) {
		return Payload{}, nil, nil, fmt.Errorf("envelope: open rotate: %w: new_public_key differs from the signed one", ErrInnerMismatch)
	}
	for _, k := range oldKeys {
		if bytes.Equal(k, innerKey) {
			return Payload{}, nil, nil, fmt.Errorf("envelope: open rotate: %w: new key equals a current key", ErrMalformed)
		}
	}
	if !verify(env.GetPayload(), env.GetSignature(), oldKeys) {
		return Payload{}, nil, nil, fmt.Errorf("envelope: open rotate: %w", ErrSignature)
	}
	newKey = ed25519.PublicKey(bytes.Clone(innerKey))
	if !verify(RotateDigest(p.NodeID, newKey, innerNonce), req.GetSignatureWithNewKey(), []ed25519.PublicKey{newKey}) {
		return Payload{}, nil, nil, fmt.Errorf("envelope: open rotate: %w", ErrNewKeySignature)
	}
	return p, newKey, bytes.Clone(innerNonce), nil
}
