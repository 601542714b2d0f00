package server

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/envelope"
)

// TestDiskFull: with the store at its free-space reserve (a reserve larger than the disk),
// every edge RPC that must write answers ResourceExhausted saying the disk is full, not
// Internal; answering a challenge still takes it (a delete), and once the space is back the
// same calls succeed.
func TestDiskFull(t *testing.T) {
	h := newHarness(t, nil)
	ctx := ctxT(t)
	refreshing := enrolled(t, h)
	rotating := enrolled(t, h)
	st := rotating.connect(t)
	if err := st.heartbeat(); err != nil {
		t.Fatal(err)
	}
	newcomer := newDaemon(h)
	// Challenges stored while there is room.
	enrolling, enrollSig, err := newcomer.attest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refresh, refreshSig, err := refreshing.attest(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if sp := h.store.SetMinFreeSpace(1 << 62); !sp.Full() {
		t.Fatalf("a reserve of 4 EiB and the store is not full: %+v", sp)
	}
	wantDiskFull := func(t *testing.T, err error) {
		t.Helper()
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "disk is full") {
			t.Fatalf("got %v, want ResourceExhausted saying the disk is full", err)
		}
	}
	t.Run("AttestNode", func(t *testing.T) {
		_, _, err := newDaemon(h).attest(ctx)
		wantDiskFull(t, err)
	})
	t.Run("ChallengeNode enrolment", func(t *testing.T) {
		_, err := h.client.ChallengeNode(ctx, &edgepb.ChallengeNodeRequest{
			ChallengeId: enrolling.ChallengeId, NodeId: newcomer.id, ChallengeSignature: enrollSig,
			BootstrapProof: &edgepb.ChallengeNodeRequest_EnrollmentToken{EnrollmentToken: h.enrollToken(newcomer.tenant, 15*time.Minute)},
		})
		wantDiskFull(t, err)
	})
	t.Run("ChallengeNode token refresh", func(t *testing.T) {
		_, err := h.client.ChallengeNode(ctx, &edgepb.ChallengeNodeRequest{
			ChallengeId: refresh.ChallengeId, NodeId: refreshing.id, ChallengeSignature: refreshSig,
		})
		wantDiskFull(t, err)
	})
	t.Run("RotateEdgeKey", func(t *testing.T) {
		_, _, err := rotating.rotate(t, envelope.NewNonce())
		wantDiskFull(t, err)
	})
	if n, err := h.store.PendingChallenges(h.srv.now()); err != nil || n != 0 {
		t.Errorf("pending challenges = %d, %v: answering a challenge must take it even on a full disk", n, err)
	}

	if sp := h.store.SetMinFreeSpace(0); sp.Full() {
		t.Fatalf("automatic reserve and the store is still full: %+v", sp)
	}
	if err := newcomer.enrollWith(ctx, h.enrollToken(newcomer.tenant, 15*time.Minute)); err != nil {
		t.Errorf("enrolment once space is back: %v", err)
	}
	if _, _, err := rotating.rotate(t, envelope.NewNonce()); err != nil {
		t.Errorf("rotation once space is back: %v", err)
	}
}
