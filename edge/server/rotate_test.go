package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/keel-relay/keel/edge/fleet"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/envelope"
)

// rotate asks for a rotation of d's key to a fresh one with nonce; on success d switches to
// the new key and token (as a daemon must, both at once).
func (d *daemon) rotate(t *testing.T, nonce []byte) (*edgepb.RotateEdgeKeyRequest, *edgepb.RotateEdgeKeyResponse, error) {
	t.Helper()
	_, newKey, _ := ed25519.GenerateKey(rand.Reader)
	req, err := envelope.SealRotate(d.key, newKey, d.token, d.id, nonce, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := d.h.client.RotateEdgeKey(ctxT(t), req)
	if err == nil {
		d.key, d.token = newKey, resp.NodeSecurityToken
	}
	return req, resp, err
}

// TestRotationUnderLiveStream: the stream keeps working across the overlap window with
// envelopes signed by the old key (and token) or the new ones; after the window the old key
// is refused.
func TestRotationUnderLiveStream(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.OverlapWindow = 700 * time.Millisecond })
	d := enrolled(t, h)
	st := d.connect(t)
	if err := st.heartbeat(); err != nil {
		t.Fatal(err)
	}
	old := *d
	req, resp, err := d.rotate(t, envelope.NewNonce())
	if err != nil {
		t.Fatal(err)
	}
	if resp.OverlapWindow.AsDuration() != 700*time.Millisecond || !resp.ExpiresAt.AsTime().After(resp.IssuedAt.AsTime()) {
		t.Fatalf("response = %v", resp)
	}
	row, _ := h.store.Daemon(d.id)
	if string(row.PublicKey) != string(d.pub()) || string(row.PreviousKey) != string(old.pub()) {
		t.Fatal("store not rotated")
	}

	// In the overlap: an envelope in flight, signed with the old key and token, passes...
	oldStream := &stream{d: &old, s: st.s, id: st.id}
	if err := oldStream.heartbeat(); err != nil {
		t.Fatal(err)
	}
	// ...and so does the switched daemon's next one.
	if err := st.heartbeat(); err != nil {
		t.Fatal(err)
	}
	res := h.invokeAsync(ctxT(t), d.id, time.Minute)
	cmd := st.nextCommand(t).GetInvokeTool()
	if err := st.s.Send(st.sealed(result(cmd.CommandId, 0))); err != nil {
		t.Fatal(err)
	}
	if o := <-res; o.err != nil {
		t.Fatal(o.err)
	}

	// The rotated-out token opens no new stream, and the captured request cannot be replayed.
	fresh := old.open(t, old.token)
	_ = fresh.hello()
	if got := fresh.endCode(t); got != codes.Unauthenticated {
		t.Fatalf("new stream with the old token ended with %s", got)
	}
	_, err = h.client.RotateEdgeKey(ctxT(t), req)
	wantCode(t, err, codes.Unauthenticated)
	// The new token opens a stream (it replaces the live one).
	d.connect(t)
	if got := st.endCode(t); got != codes.Aborted {
		t.Fatalf("replaced stream ended with %s", got)
	}

	// After the overlap window the old key is refused on a stream.
	st3 := d.connect(t)
	time.Sleep(800 * time.Millisecond)
	ev := heartbeatEvent()
	if err := envelope.Seal(old.key, d.token, d.id, st3.id, time.Now(), ev); err != nil {
		t.Fatal(err)
	}
	_ = st3.s.Send(ev)
	if got := st3.endCode(t); got != codes.Unauthenticated {
		t.Fatalf("old key after the overlap: stream ended with %s", got)
	}
}

// TestRotatedTokenAfterOverlap: a stream still using the rotated-out token after the
// overlap window is cut.
func TestRotatedTokenAfterOverlap(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.OverlapWindow = 300 * time.Millisecond })
	d := enrolled(t, h)
	st := d.connect(t)
	old := *d
	if _, _, err := d.rotate(t, envelope.NewNonce()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	oldStream := &stream{d: &old, s: st.s, id: st.id}
	_ = oldStream.heartbeat()
	if got := st.endCode(t); got != codes.Unauthenticated {
		t.Fatalf("stream ended with %s", got)
	}
}

func TestRotationRefusals(t *testing.T) {
	h := newHarness(t, nil)
	t.Run("replayed nonce", func(t *testing.T) {
		d := enrolled(t, h)
		d.connect(t)
		nonce := envelope.NewNonce()
		if _, _, err := d.rotate(t, nonce); err != nil {
			t.Fatal(err)
		}
		_, _, err := d.rotate(t, nonce)
		wantCode(t, err, codes.InvalidArgument)
	})
	t.Run("outer signature", func(t *testing.T) {
		d := enrolled(t, h)
		d.connect(t)
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		_, newKey, _ := ed25519.GenerateKey(rand.Reader)
		req, _ := envelope.SealRotate(other, newKey, d.token, d.id, envelope.NewNonce(), time.Now())
		_, err := h.client.RotateEdgeKey(ctxT(t), req)
		wantCode(t, err, codes.Unauthenticated)
	})
	t.Run("new key signature", func(t *testing.T) {
		d := enrolled(t, h)
		d.connect(t)
		_, newKey, _ := ed25519.GenerateKey(rand.Reader)
		req, _ := envelope.SealRotate(d.key, newKey, d.token, d.id, envelope.NewNonce(), time.Now())
		req.SignatureWithNewKey[0] ^= 1
		_, err := h.client.RotateEdgeKey(ctxT(t), req)
		wantCode(t, err, codes.InvalidArgument)
	})
	t.Run("malformed new key", func(t *testing.T) {
		d := enrolled(t, h)
		d.connect(t)
		_, newKey, _ := ed25519.GenerateKey(rand.Reader)
		req, _ := envelope.SealRotate(d.key, newKey, d.token, d.id, envelope.NewNonce(), time.Now())
		req.NewPublicKey = req.NewPublicKey[:31]
		_, err := h.client.RotateEdgeKey(ctxT(t), req)
		wantCode(t, err, codes.InvalidArgument)
	})
	t.Run("no envelope", func(t *testing.T) {
		_, err := h.client.RotateEdgeKey(ctxT(t), &edgepb.RotateEdgeKeyRequest{})
		wantCode(t, err, codes.InvalidArgument)
	})
	t.Run("token of another node", func(t *testing.T) {
		d, other := enrolled(t, h), enrolled(t, h)
		d.connect(t)
		d.token = other.token
		_, _, err := d.rotate(t, envelope.NewNonce())
		wantCode(t, err, codes.Unauthenticated)
	})
	t.Run("revoked", func(t *testing.T) {
		d := enrolled(t, h)
		d.connect(t)
		// Revoking blacklists the current token; a refreshed one (before the revocation)
		// reaches the revocation check.
		spare, _, _ := h.srv.issueToken(d.id, d.tenant, d.pub(), time.Now())
		if _, err := h.srv.Revoke(d.id); err != nil {
			t.Fatal(err)
		}
		d.token = spare
		_, _, err := d.rotate(t, envelope.NewNonce())
		wantCode(t, err, codes.FailedPrecondition)
	})
	t.Run("concurrent", func(t *testing.T) {
		d := enrolled(t, h)
		d.connect(t)
		var wg sync.WaitGroup
		codesSeen := make([]codes.Code, 6)
		for i := range codesSeen {
			dd := *d
			wg.Go(func() {
				_, _, err := dd.rotate(t, envelope.NewNonce())
				codesSeen[i] = codeOf(err)
			})
		}
		wg.Wait()
		ok := 0
		for _, c := range codesSeen {
			switch c {
			case codes.OK:
				ok++
			case codes.Aborted, codes.Unauthenticated:
			default:
				t.Errorf("unexpected code %s", c)
			}
		}
		if ok != 1 {
			t.Fatalf("%d rotations won (%v), want exactly 1", ok, codesSeen)
		}
	})
}

func TestRotationUnhealthy(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.StaleThreshold = 200 * time.Millisecond })
	d := enrolled(t, h)
	time.Sleep(300 * time.Millisecond) // enrolled, never heard from since
	_, _, err := d.rotate(t, envelope.NewNonce())
	wantCode(t, err, codes.FailedPrecondition)
	info, _ := h.srv.Daemon(d.id)
	if info.Status != fleet.Disconnected { // enrolled, never connected
		t.Fatalf("status = %s", info.Status)
	}
	st := d.connect(t)
	if err := st.heartbeat(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { i, _ := h.srv.Daemon(d.id); return i.Status == fleet.Connected })
	if _, _, err := d.rotate(t, envelope.NewNonce()); err != nil {
		t.Fatal(err)
	}
}
