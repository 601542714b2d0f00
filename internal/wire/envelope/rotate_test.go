package envelope

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// TestRotateDigestVector pins the digest with a value computed outside Go (Python
// hashlib.sha256(b"keel-edge-rotate" + b"node-1" + bytes(range(64)))).
func TestRotateDigestVector(t *testing.T) {
	key := make([]byte, 64)
	for i := range key {
		key[i] = byte(i)
	}
	got := hex.EncodeToString(RotateDigest("node-1", key[:32], key[32:]))
	if want := "b81cc1384884de3e7996e3509a8759b882e83e4b0858cd96289480f8c0457d93"; got != want {
		t.Fatalf("RotateDigest = %s, want %s", got, want)
	}
}

func sealedRotate(t testing.TB, oldKey, newKey ed25519.PrivateKey, nonce []byte) *edgepb.RotateEdgeKeyRequest {
	t.Helper()
	req, err := SealRotate(oldKey, newKey, testToken, testNode, nonce, testNow)
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	out := &edgepb.RotateEdgeKeyRequest{}
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRotateRoundTrip(t *testing.T) {
	oldKey, newKey, prev := testKey(1), testKey(3), testKey(9)
	nonce := NewNonce()
	req := sealedRotate(t, oldKey, newKey, nonce)
	p, nk, n, err := OpenRotate(req, pub(prev), pub(oldKey))
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != KindRotate || p.NodeID != testNode || p.StreamID != "" || !p.Timestamp.Equal(testNow) {
		t.Fatalf("payload %+v", p)
	}
	if !bytes.Equal(nk, pub(newKey)) || !bytes.Equal(n, nonce) {
		t.Fatal("new key or nonce differ")
	}
	if req.GetCurrentEnvelope().GetNodeSecurityToken() != testToken {
		t.Fatal("token not carried")
	}
	if bytes.Equal(NewNonce(), nonce) {
		t.Fatal("NewNonce repeats")
	}
}

func TestSealRotateErrors(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	tests := []struct {
		name     string
		old, new ed25519.PrivateKey
		node     string
		nonce    []byte
		msg      string
	}{
		{"short old key", k1[:32], k2, testNode, NewNonce(), "private keys are 32 and 64"},
		{"short new key", k1, k2[:10], testNode, NewNonce(), "private keys are 64 and 10"},
		{"short nonce", k1, k2, testNode, make([]byte, 31), "nonce is 31 bytes"},
		{"same key", k1, k1, testNode, NewNonce(), "new key equals the old key"},
		{"empty node id", k1, k2, "", NewNonce(), "empty node id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := SealRotate(tt.old, tt.new, testToken, tt.node, tt.nonce, testNow)
			if err == nil || req != nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("SealRotate = %v, %v; want error saying %q", req, err, tt.msg)
			}
		})
	}
}

func TestOpenRotateRefusals(t *testing.T) {
	oldKey, newKey, other := testKey(1), testKey(3), testKey(4)
	nonce := bytes.Repeat([]byte{0x42}, NonceSize)
	// resignOld rewrites the payload and signs it again with the old key.
	resignOld := func(t *testing.T, req *edgepb.RotateEdgeKeyRequest, edit func(*Payload)) {
		env := req.CurrentEnvelope
		p, err := Decode(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		p.Inner = bytes.Clone(p.Inner)
		edit(&p)
		env.Payload = p.Encode()
		env.Signature = ed25519.Sign(oldKey, env.Payload)
	}
	tests := []struct {
		name string
		keys []ed25519.PublicKey // default: the old key
		mut  func(t *testing.T, req *edgepb.RotateEdgeKeyRequest)
		want error
		msg  string
	}{
		{"no envelope", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) { r.CurrentEnvelope = nil }, ErrMalformed, "no current_envelope"},
		{"garbage payload", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) { r.CurrentEnvelope.Payload = []byte("x") }, ErrMalformed, "shorter than"},
		{"stream kind", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) {
			resignOld(t, r, func(p *Payload) { p.Kind = KindHeartbeat })
		}, ErrKind, "payload kind is Heartbeat"},
		{"unknown kind byte", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) { r.CurrentEnvelope.Payload[0] = 0 }, ErrKind, "unknown kind 0"},
		{"stream id set", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) {
			resignOld(t, r, func(p *Payload) { p.StreamID = testStream })
		}, ErrMalformed, "stream id must be empty"},
		{"inner 63 bytes", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) {
			resignOld(t, r, func(p *Payload) { p.Inner = p.Inner[:63] })
		}, ErrMalformed, "inner is 63 bytes, want 64"},
		{"inner 65 bytes", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) {
			resignOld(t, r, func(p *Payload) { p.Inner = append(p.Inner, 0) })
		}, ErrMalformed, "inner is 65 bytes"},
		{"new_public_key 31 bytes", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) { r.NewPublicKey = r.NewPublicKey[:31] }, ErrMalformed, "new_public_key is 31 bytes"},
		{"new_public_key missing", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) { r.NewPublicKey = nil }, ErrMalformed, "new_public_key is 0 bytes"},
		{"new_public_key swapped", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) { r.NewPublicKey = pub(other) }, ErrInnerMismatch, "differs from the signed one"},
		{"rotate to the current key", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) {
			resignOld(t, r, func(p *Payload) { copy(p.Inner, pub(oldKey)) })
			r.NewPublicKey = pub(oldKey)
		}, ErrMalformed, "new key equals a current key"},
		{"old signature by another key", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) {
			r.CurrentEnvelope.Signature = ed25519.Sign(other, r.CurrentEnvelope.Payload)
		}, ErrSignature, "bad signature"},
		{"outer signed by the new key", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) {
			r.CurrentEnvelope.Signature = ed25519.Sign(newKey, r.CurrentEnvelope.Payload)
		}, ErrSignature, "bad signature"},
		{"no old keys", []ed25519.PublicKey{}, nil, ErrSignature, "bad signature"},
		{"old signature truncated", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) {
			r.CurrentEnvelope.Signature = r.CurrentEnvelope.Signature[:40]
		}, ErrSignature, "bad signature"},
		{"new signature by another key", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) {
			r.SignatureWithNewKey = ed25519.Sign(other, RotateDigest(testNode, pub(newKey), nonce))
		}, ErrNewKeySignature, "bad new-key signature"},
		{"new signature missing", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) { r.SignatureWithNewKey = nil }, ErrNewKeySignature, "bad new-key signature"},
		{"new signature over the seed's node_id||key", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) {
			r.SignatureWithNewKey = ed25519.Sign(newKey, append([]byte(testNode), pub(newKey)...))
		}, ErrNewKeySignature, "bad new-key signature"},
		{"replayed for another node", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) {
			resignOld(t, r, func(p *Payload) { p.NodeID = "another-node" })
		}, ErrNewKeySignature, "bad new-key signature"},
		{"nonce changed", nil, func(t *testing.T, r *edgepb.RotateEdgeKeyRequest) {
			resignOld(t, r, func(p *Payload) { p.Inner[40] ^= 1 })
		}, ErrNewKeySignature, "bad new-key signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := sealedRotate(t, oldKey, newKey, nonce)
			if tt.mut != nil {
				tt.mut(t, req)
			}
			keys := tt.keys
			if keys == nil {
				keys = []ed25519.PublicKey{pub(oldKey)}
			}
			p, nk, n, err := OpenRotate(req, keys...)
			if !errors.Is(err, tt.want) {
				t.Fatalf("OpenRotate = %v; want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not say %q", err, tt.msg)
			}
			if p.Kind != 0 || nk != nil || n != nil {
				t.Fatal("values returned with an error")
			}
		})
	}
	if _, _, _, err := OpenRotate(nil, pub(oldKey)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("OpenRotate(nil) = %v", err)
	}
}
