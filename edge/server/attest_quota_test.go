package server

// Issue 12, finding 4 (enrollment starvation) and the size part of finding 2: AttestNode
// callers from many loopback addresses (127.0.N.M, each its own source; 127.0.N.0/24 each
// its own network) against the real server and store.

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	agentconfig "github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/agent/edged"
	"github.com/keel-relay/keel/edge/quota"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/capabilities"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
	"github.com/keel-relay/keel/storage"
)

// flood asks for challenges, anonymously, from the given sources, calls times each, and
// returns how many were issued and how many refused with ResourceExhausted.
func flood(t *testing.T, h *harness, sources []string, calls int) (issued, exhausted int) {
	t.Helper()
	for _, src := range sources {
		client := h.clientFrom(src)
		for range calls {
			_, _, err := newDaemon(h).attestWith(ctxT(t), client, "")
			switch codeOf(err) {
			case codes.OK:
				issued++
			case codes.ResourceExhausted:
				exhausted++
			default:
				t.Fatalf("attest from %s: %v", src, err)
			}
		}
	}
	return issued, exhausted
}

// addresses returns the loopback addresses 127.0.n.m for n in nets and m in 1..perNet.
func addresses(nets []int, perNet int) []string {
	var out []string
	for _, n := range nets {
		for m := 1; m <= perNet; m++ {
			out = append(out, fmt.Sprintf("127.0.%d.%d", n, m))
		}
	}
	return out
}

func span(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// agentEnroll enrolls a new node with keel-agent's own enroll code (agent/edged), which
// sends the enrollment token with its attestation, from 127.0.0.1.
func agentEnroll(t *testing.T, h *harness) (*edged.Credentials, error) {
	t.Helper()
	dir := t.TempDir()
	cfg := agentconfig.Default()
	cfg.NodeID = uuid.NewString()
	cfg.Edge.Relay = h.srv.Addr().String()
	cfg.Edge.KeyFile, cfg.Edge.TokenFile = filepath.Join(dir, "edge.key"), filepath.Join(dir, "token")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return edged.Enroll(ctxT(t), cfg, edged.EnrollRequest{Relay: cfg.Edge.Relay, Token: h.enrollToken("acme", 15*time.Minute)}, testLogger(t))
}

// TestAttestFloodDoesNotStarveEnrollment: callers from 64 addresses in 16 networks fill
// every challenge anonymous callers may hold (issue 12: 206 addresses filled the one pool
// and keel-agent edge enroll got ResourceExhausted for 300 s). keel-agent's enrollment,
// whose attestation carries its enrollment token, still succeeds (the reserved pool), and
// so does an anonymous enrollment of an older agent from a flooded network (its network's
// oldest challenge makes room).
func TestAttestFloodDoesNotStarveEnrollment(t *testing.T) {
	const anonymousPool = 48
	h := newHarness(t, func(o *Options) { o.MaxPendingChallenges = anonymousPool })
	issued, exhausted := flood(t, h, addresses(span(1, 16), 4), 4) // 256 calls, 16 per network
	t.Logf("flood: %d challenges issued, %d refused", issued, exhausted)
	if n, err := h.store.PendingChallenges(time.Now()); err != nil || n != anonymousPool {
		t.Fatalf("pending after the flood = %d, %v; want the anonymous pool's %d", n, err, anonymousPool)
	}

	creds, err := agentEnroll(t, h)
	if err != nil {
		t.Fatalf("keel-agent's enrollment during the flood: %v", err)
	}
	if _, err := h.store.Daemon(creds.NodeID); err != nil {
		t.Fatalf("enrolled node not stored: %v", err)
	}

	// An older agent (no token with its attestation) from a flooded network.
	flood(t, h, addresses([]int{0}, 8)[1:], 8) // 127.0.0.2-8: the /24 of 127.0.0.1 at its share
	d := newDaemon(h)
	if err := d.enrollWith(ctxT(t), h.enrollToken("acme", time.Minute)); err != nil {
		t.Fatalf("anonymous enrollment from a flooded network: %v", err)
	}
	now := time.Now()
	anonymous, reserved := h.srv.challenges.Len(quota.Anonymous, now), h.srv.challenges.Len(quota.Reserved, now)
	if anonymous > anonymousPool || reserved != 0 {
		t.Errorf("pending: %d anonymous (at most %d), %d reserved (want 0: the enrollments answered theirs)", anonymous, anonymousPool, reserved)
	}
	if n, err := h.store.PendingChallenges(now); err != nil || n != anonymous+reserved {
		t.Errorf("the store holds %d pending challenges (%v), the server counts %d", n, err, anonymous+reserved)
	}
}

// TestAttestShares: one source, and one /24, hold at most their share of the pending
// challenges however many they ask for; beyond it their own oldest challenge is evicted
// (counted by share), and what other sources hold is untouched.
func TestAttestShares(t *testing.T) {
	const perSource, perNetwork = 4, 10
	h := newHarness(t, func(o *Options) {
		o.MaxPendingChallenges, o.ChallengesPerSource, o.ChallengesPerNetwork = 100, perSource, perNetwork
	})
	bySource := func() (sources, networks map[string]int) {
		pending, _, err := h.store.Challenges(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		sources, networks = map[string]int{}, map[string]int{}
		for _, c := range pending {
			sources[c.SourceIP]++
			networks[c.Network]++
		}
		return sources, networks
	}

	flood(t, h, []string{"127.0.9.9"}, 3) // another source, under its share
	client := h.clientFrom("127.0.5.1")
	var first *edgepb.AttestNodeResponse
	for i := range 20 {
		a, _, err := newDaemon(h).attestWith(ctxT(t), client, "")
		if err != nil {
			t.Fatalf("attest %d: %v", i, err)
		}
		if i == 0 {
			first = a
		}
	}
	sources, _ := bySource()
	if sources["127.0.5.1"] != perSource || sources["127.0.9.9"] != 3 {
		t.Fatalf("pending by source = %v; want %d for 127.0.5.1, 3 for 127.0.9.9", sources, perSource)
	}
	_, err := h.client.ChallengeNode(ctxT(t), &edgepb.ChallengeNodeRequest{ChallengeId: first.ChallengeId})
	wantCode(t, err, codes.NotFound)

	flood(t, h, addresses([]int{6}, 10), 2) // 20 calls from one /24, each source under its share
	sources, networks := bySource()
	if networks["127.0.6.0/24"] != perNetwork {
		t.Fatalf("pending by network = %v; want %d for 127.0.6.0/24", networks, perNetwork)
	}
	if sources["127.0.9.9"] != 3 {
		t.Fatalf("the other source's challenges were touched: %v", sources)
	}
	metrics := h.metrics()
	for _, want := range []string{`keel_edge_challenges_evicted_total{share="source"} 16`, `keel_edge_challenges_evicted_total{share="network"} 10`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestOversizedCapabilities: capabilities beyond their bounds are refused with
// InvalidArgument naming the bound, in AttestNode (nothing stored) and on a stream (Hello,
// CapabilityUpdate: the stream ends, the daemon's capabilities stay as they were).
func TestOversizedCapabilities(t *testing.T) {
	h := newHarness(t, nil)
	big := &edgepb.EdgeCapabilities{Os: "linux", CustomLabels: map[string]string{"x": strings.Repeat("a", 1<<20)}}
	_, err := h.client.AttestNode(ctxT(t), &edgepb.AttestNodeRequest{
		NodeId: uuid.NewString(), Role: edgepb.NodeRole_NODE_ROLE_EDGE, PublicKey: newDaemon(h).pub(), Capabilities: big,
	})
	wantCode(t, err, codes.InvalidArgument)
	if want := fmt.Sprintf("at most %d", capabilities.MaxStringSize); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the bound (%s)", err, want)
	}
	if pending, skipped, err := h.store.Challenges(time.Now()); err != nil || len(pending)+skipped != 0 {
		t.Fatalf("challenges stored after the refusal: %d (+%d unreadable), %v", len(pending), skipped, err)
	}

	d := enrolled(t, h)
	stored := func() *edgepb.EdgeCapabilities {
		h.srv.flush()
		row, err := h.store.Daemon(d.id)
		if err != nil {
			t.Fatal(err)
		}
		caps := &edgepb.EdgeCapabilities{}
		if err := proto.Unmarshal(row.Capabilities, caps); err != nil {
			t.Fatal(err)
		}
		return caps
	}
	before := stored()

	st := d.open(t, d.token)
	hello := helloEvent(st.id)
	hello.GetHello().Capabilities = &edgepb.EdgeCapabilities{LocalTools: make([]string, capabilities.MaxItems+1)}
	if err := st.s.Send(st.sealed(hello)); err != nil {
		t.Fatal(err)
	}
	if got := st.endCode(t); got != codes.InvalidArgument {
		t.Fatalf("stream with an oversized Hello ended with %s", got)
	}
	if got := stored(); !proto.Equal(got, before) {
		t.Fatalf("capabilities after an oversized Hello = %v, want %v", got, before)
	}

	st = d.connect(t) // a valid Hello: its capabilities replace the enrollment's
	upd := &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CapabilityUpdate{CapabilityUpdate: &edgepb.CapabilityUpdate{Capabilities: big}}}
	if err := st.s.Send(st.sealed(upd)); err != nil {
		t.Fatal(err)
	}
	if got := st.endCode(t); got != codes.InvalidArgument {
		t.Fatalf("stream with an oversized CapabilityUpdate ended with %s", got)
	}
	if got, want := stored(), helloEvent("").GetHello().GetCapabilities(); !proto.Equal(got, want) {
		t.Fatalf("capabilities after an oversized CapabilityUpdate = %v, want the Hello's %v", got, want)
	}
	if !strings.Contains(h.metrics(), `keel_edge_refusals_total{reason="capabilities"} 3`) {
		t.Error("the refusals are not counted as capabilities")
	}
}

// TestAttestAuthorization: what the authorization metadata of AttestNode does. A valid
// enrollment token, or the node's current token attesting its current key, is served past
// the source's exhausted rate (reserved pool, limited per token); any other token counts
// as an anonymous call; metadata that is not "Bearer <token>" is refused.
func TestAttestAuthorization(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.AttestPerMinute = 2 })
	d := enrolled(t, h)
	revoked := enrolled(t, h)
	if _, err := h.srv.Revoke(revoked.id); err != nil {
		t.Fatal(err)
	}
	expired, _, _ := EnrollmentToken(h.key, h.srv.Issuer(), "acme", "x", time.Minute, time.Now().Add(-time.Hour))
	other := newDaemon(h)

	exhausted := h.clientFrom("127.0.7.1")
	flood(t, h, []string{"127.0.7.1"}, 2)
	for _, tc := range []struct {
		name   string
		d      *daemon
		bearer func() string
		want   codes.Code
	}{
		{"no token", newDaemon(h), func() string { return "" }, codes.ResourceExhausted},
		{"enrollment token", newDaemon(h), func() string { return h.enrollToken("acme", time.Minute) }, codes.OK},
		{"expired enrollment token", newDaemon(h), func() string { return expired }, codes.ResourceExhausted},
		{"not a token", newDaemon(h), func() string { return "a.b.c" }, codes.ResourceExhausted},
		{"node token, its node and key", d, func() string { return d.token }, codes.OK},
		{"node token, another node", other, func() string { return d.token }, codes.ResourceExhausted},
		{"node token, another key", &daemon{h: h, id: d.id, key: other.key}, func() string { return d.token }, codes.ResourceExhausted},
		{"node token of a revoked node", revoked, func() string { return revoked.token }, codes.ResourceExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.d.attestWith(ctxT(t), exhausted, tc.bearer())
			wantCode(t, err, tc.want)
		})
	}
	if n := h.srv.challenges.Len(quota.Reserved, time.Now()); n != 2 {
		t.Errorf("reserved pending = %d, want 2", n)
	}

	t.Run("refresh with the node token", func(t *testing.T) {
		a, sig, err := d.attestWith(ctxT(t), exhausted, d.token)
		if err != nil {
			t.Fatal(err)
		}
		old := d.token
		resp, err := h.client.ChallengeNode(ctxT(t), &edgepb.ChallengeNodeRequest{ChallengeId: a.ChallengeId, NodeId: d.id, ChallengeSignature: sig})
		if err != nil {
			t.Fatal(err)
		}
		d.token = resp.NodeSecurityToken
		// The refreshed-out token is no longer the node's: it counts as anonymous.
		_, _, err = d.attestWith(ctxT(t), exhausted, old)
		wantCode(t, err, codes.ResourceExhausted)
	})

	t.Run("per-token rate", func(t *testing.T) {
		tok := h.enrollToken("acme", time.Minute)
		for range 2 {
			if _, _, err := newDaemon(h).attestWith(ctxT(t), exhausted, tok); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := newDaemon(h).attestWith(ctxT(t), exhausted, tok)
		wantCode(t, err, codes.ResourceExhausted)
		if !strings.Contains(err.Error(), "with this token") {
			t.Errorf("error %q does not say the token is over its rate", err)
		}
	})

	t.Run("malformed authorization", func(t *testing.T) {
		for i, md := range []metadata.MD{
			metadata.Pairs(edgetoken.AuthorizationKey, "Basic dXNlcjpwYXNz"),
			metadata.Pairs(edgetoken.AuthorizationKey, "Bearer"),
			metadata.Pairs(edgetoken.AuthorizationKey, "Bearer a b"),
			metadata.Pairs(edgetoken.AuthorizationKey, edgetoken.Bearer("a"), edgetoken.AuthorizationKey, edgetoken.Bearer("b")),
		} {
			ctx := metadata.NewOutgoingContext(ctxT(t), md)
			client := h.clientFrom(fmt.Sprintf("127.0.8.%d", 10+i))
			_, err := client.AttestNode(ctx, &edgepb.AttestNodeRequest{NodeId: uuid.NewString(), Role: edgepb.NodeRole_NODE_ROLE_EDGE, PublicKey: d.pub()})
			wantCode(t, err, codes.InvalidArgument)
		}
	})

	t.Run("an expired enrollment token is served as anonymous, and refused at ChallengeNode", func(t *testing.T) {
		n := newDaemon(h)
		a, sig, err := n.attestWith(ctxT(t), h.clientFrom("127.0.8.2"), expired)
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.client.ChallengeNode(ctxT(t), &edgepb.ChallengeNodeRequest{ChallengeId: a.ChallengeId, NodeId: n.id, ChallengeSignature: sig,
			BootstrapProof: &edgepb.ChallengeNodeRequest_EnrollmentToken{EnrollmentToken: expired}})
		wantCode(t, err, codes.Unauthenticated)
		if !strings.Contains(err.Error(), "expired") {
			t.Errorf("error %q does not say why", err)
		}
	})
}

// TestTokenShare: one token holds at most ChallengesPerToken pending challenges; beyond
// it its own oldest goes (an agent that retries after a crash is never locked out).
func TestTokenShare(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.enrollToken("acme", time.Minute)
	var first *edgepb.AttestNodeResponse
	for i := range DefaultChallengesPerToken + 1 {
		a, _, err := newDaemon(h).attestWith(ctxT(t), h.client, tok)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = a
		}
	}
	if n := h.srv.challenges.Len(quota.Reserved, time.Now()); n != DefaultChallengesPerToken {
		t.Fatalf("reserved pending = %d, want %d", n, DefaultChallengesPerToken)
	}
	_, err := h.client.ChallengeNode(ctxT(t), &edgepb.ChallengeNodeRequest{ChallengeId: first.ChallengeId})
	wantCode(t, err, codes.NotFound)
}

// TestChallengesRestored: the challenges pending in the store when the server starts keep
// their place in their shares.
func TestChallengesRestored(t *testing.T) {
	dir := t.TempDir()
	store, err := storage.Open(storage.DefaultOptions(dir), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Now()
	var ids []string
	for i := range 5 {
		ids = append(ids, uuid.NewString())
		c := storage.Challenge{ID: ids[i], NodeID: uuid.NewString(), Expires: now.Add(time.Minute), Issued: now.Add(time.Duration(i) - 4*time.Minute),
			SourceIP: "127.0.3.1", Network: "127.0.3.0/24", Pool: quota.Anonymous.String()}
		if i == 4 { // written before pools existed
			c.Pool, c.Network, c.Issued = "", "", time.Time{}
		}
		if err := store.AdmitChallenge(c, nil); err != nil {
			t.Fatal(err)
		}
	}
	opts := testOptions()
	opts.ChallengesPerSource = 3
	srv, err := New(opts, store, metrics.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// The one written before pools existed counts in a network of its own (its source).
	if s, n, _ := srv.challenges.Counts("127.0.3.1", "127.0.3.0/24", "", time.Now()); s != 5 || n != 4 {
		t.Fatalf("restored: source %d, network %d; want 5 and 4", s, n)
	}
	// The next challenge of that source brings it back to its share, the oldest going.
	ctx := peer.NewContext(ctxT(t), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 3, 1), Port: 40000}})
	a, err := srv.AttestNode(ctx, &edgepb.AttestNodeRequest{NodeId: uuid.NewString(), Role: edgepb.NodeRole_NODE_ROLE_EDGE, PublicKey: newDaemon(nil).pub()})
	if err != nil {
		t.Fatal(err)
	}
	if s, _, _ := srv.challenges.Counts("127.0.3.1", "", "", time.Now()); s != opts.ChallengesPerSource {
		t.Fatalf("source holds %d, want %d", s, opts.ChallengesPerSource)
	}
	pending, _, err := store.Challenges(time.Now())
	var got []string
	for _, c := range pending {
		got = append(got, c.ID)
	}
	if want := []string{ids[2], ids[3], a.ChallengeId}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("the store holds %v, %v; want the two youngest restored and the new one, %v", got, err, want)
	}
}
