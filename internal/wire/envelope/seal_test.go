package envelope

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keel-relay/keel/internal/wire/edgepb"
)

const (
	testNode   = "6f1c1c9e-2a44-4e53-9a71-0c5d1f2e3a4b"
	testStream = "0b0c3a54-6a77-4bde-8a9e-3f6b1c2d4e5f"
	testToken  = "header.claims.sig"
)

var testNow = time.Date(2026, 5, 6, 7, 8, 9, 123_000_000, time.UTC)

// testKey derives an Ed25519 key from a one-byte seed (real keys, reproducible runs).
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func caps() *edgepb.EdgeCapabilities {
	return &edgepb.EdgeCapabilities{
		Os: "linux", Arch: "amd64", LocalTools: []string{"agent-run", "shell"}, MountPoints: []string{"/", "/var"},
		CustomLabels: map[string]string{"site": "par1", "rack": "b4", "zone": "eu", "role": "web"},
	}
}

// events returns one fresh, unsealed event of each kind.
func events() map[Kind]func() *edgepb.EdgeEvent {
	return map[Kind]func() *edgepb.EdgeEvent{
		KindHello: func() *edgepb.EdgeEvent {
			return &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_Hello{Hello: &edgepb.Hello{Capabilities: caps(), StreamId: testStream}}}
		},
		KindHeartbeat: func() *edgepb.EdgeEvent {
			return &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_Heartbeat{Heartbeat: &edgepb.Heartbeat{SentAt: timestamppb.New(testNow)}}}
		},
		KindCommandResult: func() *edgepb.EdgeEvent {
			anyv, _ := anypb.New(durationpb.New(3 * time.Second))
			return &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandResult{CommandResult: &edgepb.CommandResult{
				CommandId: "c1", Result: &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Ok_{Ok: &edgepb.EdgeResult_Ok{ExitCode: 0, Payload: anyv, Duration: durationpb.New(time.Second)}}},
			}}}
		},
		KindCommandProgress: func() *edgepb.EdgeEvent {
			return &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandProgress{CommandProgress: &edgepb.CommandProgress{
				CommandId: "c1", Chunk: &edgepb.Chunk{Kind: &edgepb.Chunk_Stdout{Stdout: []byte("hello\n")}},
			}}}
		},
		KindCapabilityUpdate: func() *edgepb.EdgeEvent {
			return &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CapabilityUpdate{CapabilityUpdate: &edgepb.CapabilityUpdate{Capabilities: caps()}}}
		},
	}
}

// overWire marshals ev and unmarshals it into a fresh event, as the relay receives it.
func overWire(t testing.TB, ev *edgepb.EdgeEvent) *edgepb.EdgeEvent {
	t.Helper()
	b, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	out := &edgepb.EdgeEvent{}
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func sealed(t testing.TB, k Kind, key ed25519.PrivateKey) *edgepb.EdgeEvent {
	t.Helper()
	ev := events()[k]()
	if err := Seal(key, testToken, testNode, testStream, testNow, ev); err != nil {
		t.Fatal(err)
	}
	return overWire(t, ev)
}

// envOf returns the envelope of ev's message.
func envOf(ev *edgepb.EdgeEvent) *edgepb.SealNodeEnvelope {
	_, _, env, err := arm(ev)
	if err != nil {
		return nil
	}
	return *env
}

// resign rewrites ev's payload with edit and signs it again with key, so that a test
// reaches the check after the signature.
func resign(t testing.TB, ev *edgepb.EdgeEvent, key ed25519.PrivateKey, edit func(*Payload)) {
	t.Helper()
	env := envOf(ev)
	p, err := Decode(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	p.Inner = bytes.Clone(p.Inner)
	edit(&p)
	env.Payload = p.Encode()
	env.Signature = ed25519.Sign(key, env.Payload)
}

func TestSealOpenRoundTrip(t *testing.T) {
	key, old := testKey(1), testKey(2)
	for k, mk := range events() {
		t.Run(k.String(), func(t *testing.T) {
			ev := mk()
			want := proto.Clone(ev)
			if err := Seal(key, testToken, testNode, testStream, testNow, ev); err != nil {
				t.Fatal(err)
			}
			got := overWire(t, ev)
			for _, keys := range [][]ed25519.PublicKey{{pub(key)}, {pub(old), pub(key)}, {nil, pub(key)}} {
				p, env, err := Open(got, keys...)
				if err != nil {
					t.Fatalf("Open with %d keys: %v", len(keys), err)
				}
				if p.Kind != k || p.NodeID != testNode || p.StreamID != testStream || !p.Timestamp.Equal(testNow) {
					t.Fatalf("payload %+v", p)
				}
				if env.GetNodeSecurityToken() != testToken {
					t.Fatalf("token %q", env.GetNodeSecurityToken())
				}
			}
			if kk, err := KindOf(got); err != nil || kk != k {
				t.Fatalf("KindOf = %v, %v", kk, err)
			}
			// Apart from the envelope, Seal leaves the message as it was.
			_, _, envp, _ := arm(got)
			*envp = nil
			if !proto.Equal(got, want) {
				t.Fatal("message changed by Seal")
			}
		})
	}
}

// TestOpenEncodingIndependent: an inner encoded differently (fields in reverse order,
// a string field written twice, last one wins) but decoding to the same message opens.
func TestOpenEncodingIndependent(t *testing.T) {
	key := testKey(1)
	ev := sealed(t, KindHello, key)
	capsBytes, err := proto.Marshal(caps())
	if err != nil {
		t.Fatal(err)
	}
	var inner []byte
	inner = protowire.AppendTag(inner, 3, protowire.BytesType)
	inner = protowire.AppendString(inner, "decoy")
	inner = protowire.AppendTag(inner, 3, protowire.BytesType)
	inner = protowire.AppendString(inner, testStream)
	inner = protowire.AppendTag(inner, 2, protowire.BytesType)
	inner = protowire.AppendBytes(inner, capsBytes)
	resign(t, ev, key, func(p *Payload) { p.Inner = inner })
	if _, _, err := Open(ev, pub(key)); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusals(t *testing.T) {
	key, other := testKey(1), testKey(2)
	tests := []struct {
		name string
		kind Kind
		keys []ed25519.PublicKey // default: key's
		mut  func(t *testing.T, ev *edgepb.EdgeEvent)
		want error
		msg  string
	}{
		{"nil event", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) { ev.Event = nil }, ErrMalformed, "no message"},
		{"no envelope", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) { ev.GetHeartbeat().Envelope = nil }, ErrMalformed, "no envelope"},
		{"empty payload", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) { envOf(ev).Payload = nil }, ErrMalformed, "shorter than"},
		{"wrong key", KindHeartbeat, []ed25519.PublicKey{pub(other)}, nil, ErrSignature, "bad signature"},
		{"no keys", KindHeartbeat, []ed25519.PublicKey{}, nil, ErrSignature, "bad signature"},
		{"short key skipped", KindHeartbeat, []ed25519.PublicKey{pub(key)[:31]}, nil, ErrSignature, "bad signature"},
		{"signature bit flipped", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) { envOf(ev).Signature[5] ^= 1 }, ErrSignature, "bad signature"},
		{"signature truncated", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) { env := envOf(ev); env.Signature = env.Signature[:63] }, ErrSignature, "bad signature"},
		{"payload bit flipped", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) { env := envOf(ev); env.Payload[len(env.Payload)-1] ^= 1 }, ErrSignature, "bad signature"},
		{"signed by another node key", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) { resign(t, ev, other, func(*Payload) {}) }, ErrSignature, "bad signature"},
		{"kind byte of another arm", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) {
			resign(t, ev, key, func(p *Payload) { p.Kind = KindCommandProgress })
		}, ErrKind, "payload kind is CommandProgress"},
		{"kind Rotate on the stream", KindHello, nil, func(t *testing.T, ev *edgepb.EdgeEvent) { resign(t, ev, key, func(p *Payload) { p.Kind = KindRotate }) }, ErrKind, "payload kind is Rotate"},
		{"unknown kind byte", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) {
			env := envOf(ev)
			env.Payload[0] = 9
			env.Signature = ed25519.Sign(key, env.Payload)
		}, ErrKind, "unknown kind 9"},
		{"trailing bytes", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) {
			env := envOf(ev)
			env.Payload = append(env.Payload, 0)
			env.Signature = ed25519.Sign(key, env.Payload)
		}, ErrMalformed, "trailing"},
		{"truncated payload", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) {
			env := envOf(ev)
			env.Payload = env.Payload[:len(env.Payload)-3]
			env.Signature = ed25519.Sign(key, env.Payload)
		}, ErrMalformed, "bytes left"},
		{"empty stream id", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) { resign(t, ev, key, func(p *Payload) { p.StreamID = "" }) }, ErrMalformed, "empty stream id"},
		{"message tampered after sealing", KindCommandProgress, nil, func(t *testing.T, ev *edgepb.EdgeEvent) {
			ev.GetCommandProgress().GetChunk().Kind = &edgepb.Chunk_Stdout{Stdout: []byte("rm -rf /\n")}
		}, ErrInnerMismatch, "inner does not match"},
		{"capabilities tampered after sealing", KindHello, nil, func(t *testing.T, ev *edgepb.EdgeEvent) {
			ev.GetHello().GetCapabilities().CustomLabels["site"] = "evil"
		}, ErrInnerMismatch, "inner does not match"},
		{"sent_at tampered", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) { ev.GetHeartbeat().SentAt.Seconds++ }, ErrInnerMismatch, "inner does not match"},
		{"unknown field added to message", KindCommandResult, nil, func(t *testing.T, ev *edgepb.EdgeEvent) {
			ev.GetCommandResult().ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
		}, ErrInnerMismatch, "inner does not match"},
		{"tampered inner re-signed", KindCommandProgress, nil, func(t *testing.T, ev *edgepb.EdgeEvent) {
			resign(t, ev, key, func(p *Payload) { p.Inner[len(p.Inner)-1] ^= 1 })
		}, ErrInnerMismatch, "inner does not match"},
		{"inner of another type", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) {
			h := sealed(t, KindHello, key)
			hp, _ := Decode(envOf(h).Payload)
			resign(t, ev, key, func(p *Payload) { p.Inner = hp.Inner })
		}, ErrInnerMismatch, "inner does not match"},
		{"inner does not decode", KindCommandProgress, nil, func(t *testing.T, ev *edgepb.EdgeEvent) {
			resign(t, ev, key, func(p *Payload) { p.Inner = []byte{0xff, 0xff, 0xff} })
		}, ErrMalformed, "inner does not decode"},
		{"inner carries an envelope", KindHeartbeat, nil, func(t *testing.T, ev *edgepb.EdgeEvent) {
			hb := proto.Clone(ev.GetHeartbeat()).(*edgepb.Heartbeat)
			b, _ := proto.Marshal(hb)
			resign(t, ev, key, func(p *Payload) { p.Inner = b })
		}, ErrInnerMismatch, "inner carries an envelope"},
		{"Hello stream id differs from payload", KindHello, nil, func(t *testing.T, ev *edgepb.EdgeEvent) {
			resign(t, ev, key, func(p *Payload) { p.StreamID = "other-stream" })
		}, ErrInnerMismatch, "Hello.stream_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := sealed(t, tt.kind, key)
			if tt.mut != nil {
				tt.mut(t, ev)
			}
			keys := tt.keys
			if keys == nil {
				keys = []ed25519.PublicKey{pub(key)}
			}
			p, env, err := Open(ev, keys...)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %+v, %v; want %v", p, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not say %q", err, tt.msg)
			}
			if env != nil || p.Kind != 0 {
				t.Fatal("payload or envelope returned with an error")
			}
		})
	}
}

// TestOpenReadOnly: Open does not modify the event, so concurrent Opens of one event are
// race-free (run with -race).
func TestOpenReadOnly(t *testing.T) {
	key := testKey(1)
	ev := sealed(t, KindCapabilityUpdate, key)
	before := proto.Clone(ev)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if _, _, err := Open(ev, pub(key)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if !proto.Equal(ev, before) {
		t.Fatal("Open modified the event")
	}
}

func TestSealErrors(t *testing.T) {
	key := testKey(1)
	tests := []struct {
		name     string
		key      ed25519.PrivateKey
		node     string
		stream   string
		ev       func() *edgepb.EdgeEvent
		want     error // nil: any error
		contains string
	}{
		{"short key", key[:32], testNode, testStream, events()[KindHeartbeat], nil, "private key is 32 bytes"},
		{"empty event", key, testNode, testStream, func() *edgepb.EdgeEvent { return &edgepb.EdgeEvent{} }, ErrMalformed, "no message"},
		{"nil event", key, testNode, testStream, func() *edgepb.EdgeEvent { return nil }, ErrMalformed, "no message"},
		{"nil arm message", key, testNode, testStream, func() *edgepb.EdgeEvent { return &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_Hello{}} }, ErrMalformed, "no message"},
		{"empty stream id", key, testNode, "", events()[KindHeartbeat], ErrMalformed, "empty stream id"},
		{"Hello stream id differs", key, testNode, "other", events()[KindHello], ErrInnerMismatch, "Hello.stream_id"},
		{"empty node id", key, "", testStream, events()[KindHeartbeat], ErrMalformed, "empty node id"},
		{"long node id", key, strings.Repeat("n", MaxID+1), testStream, events()[KindHeartbeat], ErrMalformed, "node id is 257 bytes"},
		{"node id bad UTF-8", key, "\xff", testStream, events()[KindHeartbeat], ErrMalformed, "UTF-8"},
		{"inner too big", key, testNode, testStream, func() *edgepb.EdgeEvent {
			return &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandProgress{CommandProgress: &edgepb.CommandProgress{
				Chunk: &edgepb.Chunk{Kind: &edgepb.Chunk_Stderr{Stderr: make([]byte, MaxInner)}}}}}
		}, ErrMalformed, "limit 4194304"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.ev()
			err := Seal(tt.key, testToken, tt.node, tt.stream, testNow, ev)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Seal = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Fatalf("error %q does not say %q", err, tt.contains)
			}
			if envOf(ev) != nil {
				t.Fatal("envelope set despite the error")
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	for k, mk := range events() {
		if got, err := KindOf(mk()); err != nil || got != k {
			t.Errorf("KindOf(%s) = %v, %v", k, got, err)
		}
	}
	for _, ev := range []*edgepb.EdgeEvent{nil, {}, {Event: &edgepb.EdgeEvent_Heartbeat{}}} {
		if _, err := KindOf(ev); !errors.Is(err, ErrMalformed) {
			t.Errorf("KindOf(%v) = %v, want ErrMalformed", ev, err)
		}
	}
}

// FuzzOpen feeds arbitrary bytes, as a marshalled EdgeEvent, to Open. It must not panic,
// and nothing but the seeded, genuinely sealed payloads may ever open.
func FuzzOpen(f *testing.F) {
	key := testKey(1)
	genuine := map[string]bool{}
	for k := range events() {
		ev := sealed(f, k, key)
		b, err := proto.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		genuine[string(envOf(ev).Payload)] = true
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev := &edgepb.EdgeEvent{}
		if proto.Unmarshal(b, ev) != nil {
			return
		}
		p, env, err := Open(ev, pub(key))
		if err != nil {
			for _, s := range []error{ErrMalformed, ErrKind, ErrSignature, ErrInnerMismatch} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error without a sentinel: %v", err)
		}
		if !genuine[string(env.Payload)] {
			t.Fatalf("forged payload opened: %x", env.Payload)
		}
		if !bytes.Equal(p.Encode(), env.Payload) {
			t.Fatal("returned payload differs from the envelope's")
		}
	})
}

// benchEvent is a CommandProgress with a 4 KiB stdout chunk, the common case on a busy
// stream, or a Heartbeat.
func benchEvent(k Kind) *edgepb.EdgeEvent {
	if k == KindHeartbeat {
		return events()[KindHeartbeat]()
	}
	return &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandProgress{CommandProgress: &edgepb.CommandProgress{
		CommandId: "0f8e4d2a-9b7c-4e1f-8a3d-2c6b5e4f7a9d", Chunk: &edgepb.Chunk{Kind: &edgepb.Chunk_Stdout{Stdout: bytes.Repeat([]byte("x"), 4096)}}}}}
}

func BenchmarkSeal(b *testing.B) {
	key := testKey(1)
	for _, k := range []Kind{KindHeartbeat, KindCommandProgress} {
		b.Run(k.String(), func(b *testing.B) {
			ev := benchEvent(k)
			b.ReportAllocs()
			for b.Loop() {
				if err := Seal(key, testToken, testNode, testStream, testNow, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	key := testKey(1)
	for _, k := range []Kind{KindHeartbeat, KindCommandProgress} {
		b.Run(k.String(), func(b *testing.B) {
			ev := benchEvent(k)
			if err := Seal(key, testToken, testNode, testStream, testNow, ev); err != nil {
				b.Fatal(err)
			}
			ev = overWire(b, ev)
			keys := []ed25519.PublicKey{pub(testKey(2)), pub(key)} // the worst case: previous key tried first
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Open(ev, keys...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
