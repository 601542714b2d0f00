package envelope

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestPayloadVector pins the canonical layout with bytes written out by hand
// (kind 2, 1700000000123 ms, "n1", "s1", inner 01 02).
func TestPayloadVector(t *testing.T) {
	p := Payload{Kind: KindHeartbeat, Timestamp: time.UnixMilli(1700000000123), NodeID: "n1", StreamID: "s1", Inner: []byte{1, 2}}
	const want = "02" + "7b68e5cf8b010000" + "02000000" + "6e31" + "02000000" + "7331" + "02000000" + "0102"
	if got := hex.EncodeToString(p.Encode()); got != want {
		t.Fatalf("Encode = %s, want %s", got, want)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	ts := time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.FixedZone("X", 3600))
	tests := []struct {
		name string
		p    Payload
	}{
		{"hello", Payload{KindHello, ts, "6f1c1c9e-2a44-4e53-9a71-0c5d1f2e3a4b", "0b0c3a54-6a77-4bde-8a9e-3f6b1c2d4e5f", []byte{0x0a, 0x00}}},
		{"rotate empty stream", Payload{KindRotate, ts, "node", "", bytes.Repeat([]byte{7}, 64)}},
		{"empty inner", Payload{KindHeartbeat, ts, "n", "s", nil}},
		{"max ids", Payload{KindCapabilityUpdate, ts, strings.Repeat("é", MaxID/2), strings.Repeat("x", MaxID), []byte("i")}},
		{"before 1970", Payload{KindCommandResult, time.UnixMilli(-1234567), "n", "s", []byte("r")}},
		{"max inner", Payload{KindCommandProgress, ts, "n", "s", make([]byte, MaxInner)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.p.Encode()
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != tt.p.Kind || got.NodeID != tt.p.NodeID || got.StreamID != tt.p.StreamID || !bytes.Equal(got.Inner, tt.p.Inner) {
				t.Fatalf("Decode = %+v, want %+v", got, tt.p)
			}
			if want := tt.p.Timestamp.Truncate(0).UnixMilli(); got.Timestamp.UnixMilli() != want || got.Timestamp.Location() != time.UTC {
				t.Fatalf("timestamp %v, want %d ms UTC", got.Timestamp, want)
			}
			if !bytes.Equal(got.Encode(), b) {
				t.Fatal("re-encoding differs")
			}
		})
	}
}

// raw builds a payload byte by byte so that bad lengths can be written.
func raw(kind byte, ms uint64, parts ...[]byte) []byte {
	b := []byte{kind}
	b = binary.LittleEndian.AppendUint64(b, ms)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func lv(s string) []byte  { return append(binary.LittleEndian.AppendUint32(nil, uint32(len(s))), s...) }
func u32(n uint32) []byte { return binary.LittleEndian.AppendUint32(nil, n) }

func TestDecodeBad(t *testing.T) {
	good := raw(2, 1, lv("n"), lv("s"), lv("in"))
	if _, err := Decode(good); err != nil {
		t.Fatalf("good payload: %v", err)
	}
	tests := []struct {
		name string
		b    []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrMalformed, "shorter than"},
		{"header only", good[:9], ErrMalformed, "shorter than"},
		{"kind 0", raw(0, 1, lv("n"), lv("s"), lv("in")), ErrKind, "unknown kind 0"},
		{"kind 7", raw(7, 1, lv("n"), lv("s"), lv("in")), ErrKind, "unknown kind 7"},
		{"kind 255", raw(255, 1, lv("n"), lv("s"), lv("in")), ErrKind, "unknown kind 255"},
		{"trailing byte", append(bytes.Clone(good), 0), ErrMalformed, "1 trailing bytes"},
		{"truncated inner", good[:len(good)-1], ErrMalformed, "inner length 2 but only 1"},
		{"missing inner length", raw(2, 1, lv("node"), lv("stream")), ErrMalformed, "truncated before the length of inner"},
		{"truncated inner length", raw(2, 1, lv("node"), lv("stream"), []byte{2, 0}), ErrMalformed, "truncated before the length of inner"},
		{"truncated stream id length", raw(2, 1, lv("node-id-long-enough"), []byte{1, 0}), ErrMalformed, "truncated before the length of stream id"},
		{"node id longer than data", raw(2, 1, u32(100), []byte("n"), lv("s"), lv("in")), ErrMalformed, "node id length 100 but only"},
		{"node id over limit", raw(2, 1, lv(strings.Repeat("n", MaxID+1)), lv("s"), lv("in")), ErrMalformed, "node id length 257 over the limit 256"},
		{"node id length 2^32-1", raw(2, 1, u32(0xffffffff), lv("s"), lv("in")), ErrMalformed, "over the limit"},
		{"empty node id", raw(2, 1, lv(""), lv("s"), lv("in")), ErrMalformed, "empty node id"},
		{"node id bad UTF-8", raw(2, 1, lv("n\xff"), lv("s"), lv("in")), ErrMalformed, "node id is not valid UTF-8"},
		{"stream id over limit", raw(2, 1, lv("n"), lv(strings.Repeat("s", MaxID+1)), lv("in")), ErrMalformed, "stream id length 257"},
		{"stream id bad UTF-8", raw(2, 1, lv("n"), lv("\xc3"), lv("in")), ErrMalformed, "stream id is not valid UTF-8"},
		{"inner over limit", raw(2, 1, lv("n"), lv("s"), u32(MaxInner+1)), ErrMalformed, "inner length 4194305 over the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Decode(tt.b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %+v, %v; want %v", p, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not say %q", err, tt.msg)
			}
			if p.Kind != 0 || p.NodeID != "" || p.Inner != nil {
				t.Fatalf("partial payload returned with error: %+v", p)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindHello: "Hello", KindRotate: "Rotate", KindCommandProgress: "CommandProgress", 0: "Kind(0)", 9: "Kind(9)"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q, want %q", uint8(k), k.String(), want)
		}
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to the same bytes
// (the encoding is canonical: one byte string per payload).
func FuzzDecode(f *testing.F) {
	f.Add(raw(2, 1, lv("n"), lv("s"), lv("in")))
	f.Add(raw(6, 1700000000123, lv("node"), lv(""), lv(strings.Repeat("k", 64))))
	f.Add(raw(1, ^uint64(0), lv("é"), lv("s"), lv("")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrKind) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if err := p.Check(); err != nil {
			t.Fatalf("Decode accepted a payload Check refuses: %v", err)
		}
		if !bytes.Equal(p.Encode(), b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, p.Encode())
		}
	})
}
