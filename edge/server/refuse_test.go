package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keel-relay/keel/edge/fleet"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
	"github.com/keel-relay/keel/internal/wire/envelope"
	"github.com/keel-relay/keel/internal/wire/ids"
)

// resign replaces the envelope payload of ev with p, signed with key.
func resign(ev *edgepb.EdgeEvent, key ed25519.PrivateKey, p envelope.Payload) {
	env := envelopeOf(ev)
	env.Payload = p.Encode()
	env.Signature = ed25519.Sign(key, env.Payload)
}

func decoded(t *testing.T, ev *edgepb.EdgeEvent) envelope.Payload {
	p, err := envelope.Decode(envelopeOf(ev).GetPayload())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStreamRefusals: each bad stream ends with its code, and the refusal is counted.
func TestStreamRefusals(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.HelloTimeout = 300 * time.Millisecond })
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name   string
		reason string
		want   codes.Code
		run    func(t *testing.T, d *daemon) *stream // returns the stream to watch
	}{
		{"hello not first", "not_hello", codes.InvalidArgument, func(t *testing.T, d *daemon) *stream {
			st := d.open(t, d.token)
			_ = st.heartbeat()
			return st
		}},
		{"no hello within timeout", "no_hello", codes.InvalidArgument, func(t *testing.T, d *daemon) *stream {
			return d.open(t, d.token)
		}},
		{"no bearer", "bearer", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			st := d.open(t, "")
			_ = st.hello()
			return st
		}},
		{"hello wrong signature", "signature", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			st := d.open(t, d.token)
			ev := st.sealed(helloEvent(st.id))
			resign(ev, otherKey, decoded(t, ev))
			_ = st.s.Send(ev)
			return st
		}},
		{"heartbeat wrong signature", "signature", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			st := d.connect(t)
			ev := st.sealed(heartbeatEvent())
			envelopeOf(ev).Signature[0] ^= 1
			_ = st.s.Send(ev)
			return st
		}},
		{"wrong kind byte", "kind", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			st := d.connect(t)
			ev := st.sealed(heartbeatEvent())
			p := decoded(t, ev)
			p.Kind = envelope.KindCapabilityUpdate
			resign(ev, d.key, p)
			_ = st.s.Send(ev)
			return st
		}},
		{"inner differs", "inner", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			st := d.connect(t)
			ev := st.sealed(heartbeatEvent())
			ev.GetHeartbeat().SentAt.Seconds++
			_ = st.s.Send(ev)
			return st
		}},
		{"stream id mismatch", "stream_mismatch", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			st := d.connect(t)
			ev := heartbeatEvent()
			if err := envelope.Seal(d.key, d.token, d.id, uuid.NewString(), time.Now(), ev); err != nil {
				t.Fatal(err)
			}
			_ = st.s.Send(ev)
			return st
		}},
		{"node id mismatch", "node_mismatch", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			st := d.connect(t)
			ev := heartbeatEvent()
			if err := envelope.Seal(d.key, d.token, uuid.NewString(), st.id, time.Now(), ev); err != nil {
				t.Fatal(err)
			}
			_ = st.s.Send(ev)
			return st
		}},
		{"old timestamp", "timestamp", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			st := d.connect(t)
			ev := heartbeatEvent()
			if err := envelope.Seal(d.key, d.token, d.id, st.id, time.Now().Add(-3*time.Minute), ev); err != nil {
				t.Fatal(err)
			}
			_ = st.s.Send(ev)
			return st
		}},
		{"future timestamp", "timestamp", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			st := d.connect(t)
			ev := heartbeatEvent()
			if err := envelope.Seal(d.key, d.token, d.id, st.id, time.Now().Add(3*time.Minute), ev); err != nil {
				t.Fatal(err)
			}
			_ = st.s.Send(ev)
			return st
		}},
		{"timestamp older than the previous", "timestamp", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			st := d.connect(t)
			ev := heartbeatEvent()
			if err := envelope.Seal(d.key, d.token, d.id, st.id, time.Now().Add(-time.Second), ev); err != nil {
				t.Fatal(err)
			}
			_ = st.s.Send(ev)
			return st
		}},
		{"second hello", "second_hello", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			st := d.connect(t)
			_ = st.hello()
			return st
		}},
		{"envelope token of another node", "node_mismatch", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			other := enrolled(t, h)
			st := d.connect(t)
			ev := heartbeatEvent()
			if err := envelope.Seal(d.key, other.token, d.id, st.id, time.Now(), ev); err != nil {
				t.Fatal(err)
			}
			_ = st.s.Send(ev)
			return st
		}},
		{"no envelope", "malformed", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			st := d.connect(t)
			_ = st.s.Send(heartbeatEvent())
			return st
		}},
		{"blacklisted bearer", "blacklisted", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			_, c, _ := edgetoken.Parse(d.token)
			if err := h.store.Blacklist(c.ID, c.Expiry); err != nil {
				t.Fatal(err)
			}
			st := d.open(t, d.token)
			_ = st.hello()
			return st
		}},
		{"expired bearer", "token", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			tok, _, err := h.srv.issueToken(d.id, d.tenant, d.pub(), time.Now().Add(-2*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			st := d.open(t, tok)
			_ = st.hello()
			return st
		}},
		{"bearer bound to another key", "key", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			tok, _, err := h.srv.issueToken(d.id, d.tenant, otherKey.Public().(ed25519.PublicKey), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			st := d.open(t, tok)
			_ = st.hello()
			return st
		}},
		{"bearer of an unknown node", "unknown_daemon", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			tok, _, err := h.srv.issueToken(uuid.NewString(), d.tenant, d.pub(), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			st := d.open(t, tok)
			_ = st.hello()
			return st
		}},
		{"revoked daemon", "blacklisted", codes.Unauthenticated, func(t *testing.T, d *daemon) *stream {
			if _, err := h.srv.Revoke(d.id); err != nil {
				t.Fatal(err)
			}
			st := d.open(t, d.token)
			_ = st.hello()
			return st
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := metrics.Value(h.srv.m.refused.With(tc.reason))
			d := enrolled(t, h)
			st := tc.run(t, d)
			if got := st.endCode(t); got != tc.want {
				t.Fatalf("stream ended with %s, want %s", got, tc.want)
			}
			if after := metrics.Value(h.srv.m.refused.With(tc.reason)); after != before+1 {
				t.Errorf("refusals{reason=%q} went from %v to %v", tc.reason, before, after)
			}
		})
	}
}

func TestRevokeClosesLiveStream(t *testing.T) {
	h := newHarness(t, nil)
	d := enrolled(t, h)
	st := d.connect(t)
	res := h.invokeAsync(ctxT(t), d.id, time.Minute)
	_ = st.nextCommand(t)
	info, err := h.srv.Revoke(d.id)
	if err != nil || info.Status != fleet.Revoked {
		t.Fatalf("Revoke = %+v, %v", info, err)
	}
	if got := st.endCode(t); got != codes.Unauthenticated {
		t.Fatalf("stream ended with %s", got)
	}
	if o := <-res; o.err == nil {
		t.Fatal("pending command survived the revocation")
	}
	// Token refresh and re-enrollment are refused too.
	wantCode(t, d.enrollWith(ctxT(t), ""), codes.PermissionDenied)
	wantCode(t, d.enrollWith(ctxT(t), h.enrollToken(d.tenant, time.Minute)), codes.PermissionDenied)
}

// alg:none and other forged tokens.
func noneToken(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc([]byte(claims)) + "."
}

func TestEnrollmentRefusals(t *testing.T) {
	issuerPub, issuerKey, _ := ed25519.GenerateKey(rand.Reader)
	h := newHarness(t, func(o *Options) {
		o.TrustedIssuers = map[string]ed25519.PublicKey{"https://upstream.example": issuerPub}
	})
	_, foreignKey, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	exp := now.Add(10 * time.Minute).Unix()
	for _, tc := range []struct {
		name string
		tok  func(d *daemon) string
		want codes.Code
	}{
		{"expired", func(d *daemon) string {
			tok, _, _ := EnrollmentToken(h.key, h.srv.Issuer(), "acme", "x", time.Minute, now.Add(-time.Hour))
			return tok
		}, codes.Unauthenticated},
		{"not yet valid", func(d *daemon) string {
			tok, _, _ := EnrollmentToken(h.key, h.srv.Issuer(), "acme", "x", time.Hour, now.Add(10*time.Minute))
			return tok
		}, codes.Unauthenticated},
		{"foreign issuer", func(d *daemon) string {
			tok, _, _ := EnrollmentToken(foreignKey, "https://evil.example", "acme", "x", time.Minute, now)
			return tok
		}, codes.Unauthenticated},
		{"own issuer name, foreign key", func(d *daemon) string {
			tok, _, _ := EnrollmentToken(foreignKey, h.srv.Issuer(), "acme", "x", time.Minute, now)
			return tok
		}, codes.Unauthenticated},
		{"alg none", func(d *daemon) string {
			return noneToken(`{"iss":"` + h.srv.Issuer() + `","aud":"edge-enrollment","tid":"acme","jti":"` + uuid.NewString() + `","exp":` + itoa(exp) + `}`)
		}, codes.Unauthenticated},
		{"node audience", func(d *daemon) string {
			tok, _, _ := h.srv.issueToken(d.id, "acme", d.pub(), now)
			return tok
		}, codes.Unauthenticated},
		{"no tenant", func(d *daemon) string {
			tok, _ := edgetoken.Sign(h.key, "", edgetoken.Claims{Issuer: h.srv.Issuer(), Audience: edgetoken.AudienceEnrollment, ID: uuid.NewString(), Expiry: now.Add(time.Minute)})
			return tok
		}, codes.Unauthenticated},
		{"garbage", func(d *daemon) string { return "a.b.c" }, codes.Unauthenticated},
		{"no token, not enrolled", func(d *daemon) string { return "" }, codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDaemon(h)
			wantCode(t, d.enrollWith(ctxT(t), tc.tok(d)), tc.want)
			if _, err := h.store.Daemon(d.id); err == nil {
				t.Fatal("daemon stored despite the refusal")
			}
		})
	}

	t.Run("trusted issuer", func(t *testing.T) {
		d := newDaemon(h)
		tok, _, _ := EnrollmentToken(issuerKey, "https://upstream.example", "acme", "x", time.Minute, now)
		if err := d.enrollWith(ctxT(t), tok); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("reused jti", func(t *testing.T) {
		tok := h.enrollToken("acme", time.Minute)
		if err := newDaemon(h).enrollWith(ctxT(t), tok); err != nil {
			t.Fatal(err)
		}
		d := newDaemon(h)
		wantCode(t, d.enrollWith(ctxT(t), tok), codes.Unauthenticated)
		if _, err := h.store.Daemon(d.id); err == nil {
			t.Fatal("second daemon stored")
		}
	})
	t.Run("other tenant", func(t *testing.T) {
		d := enrolled(t, h)
		wantCode(t, d.enrollWith(ctxT(t), h.enrollToken("globex", time.Minute)), codes.AlreadyExists)
	})
	t.Run("refresh with the enrolled key", func(t *testing.T) {
		d := enrolled(t, h)
		old := d.token
		if err := d.enrollWith(ctxT(t), ""); err != nil || d.token == old {
			t.Fatalf("refresh: %v", err)
		}
		d.connect(t)
	})
	t.Run("refresh with another key", func(t *testing.T) {
		d := enrolled(t, h)
		_, d.key, _ = ed25519.GenerateKey(rand.Reader)
		wantCode(t, d.enrollWith(ctxT(t), ""), codes.Unauthenticated)
	})
	t.Run("challenge signature", func(t *testing.T) {
		d := newDaemon(h)
		a, _, err := d.attest(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.client.ChallengeNode(ctxT(t), &edgepb.ChallengeNodeRequest{
			ChallengeId: a.ChallengeId, NodeId: d.id, ChallengeSignature: ed25519.Sign(foreignKey, a.ChallengeNonce),
			BootstrapProof: &edgepb.ChallengeNodeRequest_EnrollmentToken{EnrollmentToken: h.enrollToken("acme", time.Minute)},
		})
		wantCode(t, err, codes.Unauthenticated)
		// Single use: the right answer now finds no challenge.
		_, err = h.client.ChallengeNode(ctxT(t), &edgepb.ChallengeNodeRequest{
			ChallengeId: a.ChallengeId, NodeId: d.id, ChallengeSignature: ed25519.Sign(d.key, a.ChallengeNonce),
			BootstrapProof: &edgepb.ChallengeNodeRequest_EnrollmentToken{EnrollmentToken: h.enrollToken("acme", time.Minute)},
		})
		wantCode(t, err, codes.NotFound)
	})
	t.Run("challenge of another node", func(t *testing.T) {
		d := newDaemon(h)
		a, sig, err := d.attest(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.client.ChallengeNode(ctxT(t), &edgepb.ChallengeNodeRequest{ChallengeId: a.ChallengeId, NodeId: uuid.NewString(), ChallengeSignature: sig})
		wantCode(t, err, codes.Unauthenticated)
	})
}

func itoa(n int64) string {
	b := []byte{}
	if n == 0 {
		return "0"
	}
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

func TestAttest(t *testing.T) {
	t.Run("rate limit", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.AttestPerMinute = 5 })
		for i := range 5 {
			if _, _, err := newDaemon(h).attest(ctxT(t)); err != nil {
				t.Fatalf("attest %d: %v", i+1, err)
			}
		}
		_, _, err := newDaemon(h).attest(ctxT(t))
		wantCode(t, err, codes.ResourceExhausted)
	})
	t.Run("pending challenges bound", func(t *testing.T) {
		// A full pool makes room: the oldest challenge goes, the new one is issued.
		h := newHarness(t, func(o *Options) { o.MaxPendingChallenges = 2 })
		var first *edgepb.AttestNodeResponse
		for i := range 3 {
			a, _, err := newDaemon(h).attest(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = a
			}
		}
		if n, err := h.store.PendingChallenges(time.Now()); err != nil || n != 2 {
			t.Fatalf("pending = %d, %v; want 2", n, err)
		}
		_, err := h.client.ChallengeNode(ctxT(t), &edgepb.ChallengeNodeRequest{ChallengeId: first.ChallengeId})
		wantCode(t, err, codes.NotFound)
	})
	t.Run("bad requests", func(t *testing.T) {
		h := newHarness(t, nil)
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		for _, tc := range []struct {
			name string
			req  *edgepb.AttestNodeRequest
			want codes.Code
		}{
			{"node id not a uuid", &edgepb.AttestNodeRequest{NodeId: "node1", Role: edgepb.NodeRole_NODE_ROLE_EDGE, PublicKey: pub}, codes.InvalidArgument},
			{"uuid without dashes", &edgepb.AttestNodeRequest{NodeId: "0123456789abcdef0123456789abcdef", Role: edgepb.NodeRole_NODE_ROLE_EDGE, PublicKey: pub}, codes.InvalidArgument},
			{"no role", &edgepb.AttestNodeRequest{NodeId: uuid.NewString(), PublicKey: pub}, codes.InvalidArgument},
			{"unknown role", &edgepb.AttestNodeRequest{NodeId: uuid.NewString(), Role: 42, PublicKey: pub}, codes.InvalidArgument},
			{"worker role", &edgepb.AttestNodeRequest{NodeId: uuid.NewString(), Role: edgepb.NodeRole_NODE_ROLE_WORKER, PublicKey: pub}, codes.Unimplemented},
			{"short key", &edgepb.AttestNodeRequest{NodeId: uuid.NewString(), Role: edgepb.NodeRole_NODE_ROLE_EDGE, PublicKey: pub[:31]}, codes.InvalidArgument},
			{"no key", &edgepb.AttestNodeRequest{NodeId: uuid.NewString(), Role: edgepb.NodeRole_NODE_ROLE_EDGE}, codes.InvalidArgument},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := h.client.AttestNode(ctxT(t), tc.req)
				wantCode(t, err, tc.want)
			})
		}
		a, err := h.client.AttestNode(ctxT(t), &edgepb.AttestNodeRequest{NodeId: uuid.NewString(), Role: edgepb.NodeRole_NODE_ROLE_EDGE, PublicKey: pub})
		if err != nil || len(a.ChallengeNonce) != 32 || ids.ValidUUID("challenge id", a.ChallengeId) != nil {
			t.Fatalf("attest = %v, %v", a, err)
		}
	})
}

func TestWorkerRoleRefusesEdgeRPCs(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Role, o.Worker = "worker", true })
	d := newDaemon(h)
	_, _, err := d.attest(ctxT(t))
	wantCode(t, err, codes.FailedPrecondition)
	_, err = h.client.ChallengeNode(ctxT(t), &edgepb.ChallengeNodeRequest{})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = h.client.RotateEdgeKey(ctxT(t), &edgepb.RotateEdgeKeyRequest{})
	wantCode(t, err, codes.FailedPrecondition)
	st := d.open(t, "x")
	if got := st.endCode(t); got != codes.FailedPrecondition {
		t.Fatalf("ConnectEdge ended with %s", got)
	}
	checkHealth(t, h, "SERVING")
}

func TestMaxStreams(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxStreams = 1 })
	a, b := enrolled(t, h), enrolled(t, h)
	a.connect(t)
	st := b.open(t, b.token)
	_ = st.hello()
	if got := st.endCode(t); got != codes.ResourceExhausted {
		t.Fatalf("second node's stream ended with %s", got)
	}
	a.connect(t) // a replacement always fits
}

// nearFlag is a memory pressure a test turns on and off.
type nearFlag struct{ on atomic.Bool }

func (n *nearFlag) Near() bool { return n.on.Load() }

// TestMemoryPressure: near the memory budget a new stream is refused with ResourceExhausted,
// saying why; a node's replacement stream is still taken; once the pressure goes, new streams
// are taken again.
func TestMemoryPressure(t *testing.T) {
	near := &nearFlag{}
	h := newHarness(t, func(o *Options) { o.Pressure = near })
	a, b := enrolled(t, h), enrolled(t, h)
	a.connect(t)
	near.on.Store(true)
	st := b.open(t, b.token)
	_ = st.hello()
	_, err := st.s.Recv()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "memory budget") {
		t.Fatalf("new stream near the budget ended with %v, want ResourceExhausted about the memory budget", err)
	}
	a.connect(t) // a replacement adds nothing
	if m := h.metrics(); !strings.Contains(m, `keel_edge_refusals_total{reason="memory"} 1`) {
		t.Errorf("refusal not counted:\n%s", m)
	}
	near.on.Store(false)
	b.connect(t)
}
