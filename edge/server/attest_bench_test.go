package server

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-relay/keel/edge/edgesim"
	"github.com/keel-relay/keel/edge/quota"
	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// BenchmarkEnrollBehindOneAddress measures how fast a fleet behind one address (a NAT)
// enrolls with the default limits (5 anonymous attestations per address and minute, the
// default pools and shares): every agent attests from 127.0.0.5 with its own enrollment
// token as the attestation's authorization (as keel-agent edge enroll sends it), then
// answers the challenge with it; 2 × GOMAXPROCS agents at once, over a real store with
// synced writes. The per-address rate does not hold them back; the store's synced
// transactions (the challenge taken, the enrollment) do. Run it with a fixed count:
//
//	go test -run '^$' -bench EnrollBehindOneAddress -benchtime=2000x ./edge/server/
func BenchmarkEnrollBehindOneAddress(b *testing.B) {
	h := newHarness(b, func(o *Options) { o.AttestPerMinute = 5 })
	client := h.clientFrom("127.0.0.5")
	ids := make([]*edgesim.Identity, b.N)
	toks := make([]string, b.N)
	for i := range ids {
		id, err := edgesim.NewIdentity()
		if err != nil {
			b.Fatal(err)
		}
		ids[i], toks[i] = id, h.enrollToken("acme", 15*time.Minute)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var next atomic.Int64
	b.SetParallelism(2)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			if err := ids[i].Enroll(ctx, client, toks[i], nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Minutes(), "enrollments/min")
}

// BenchmarkAttestFullPool measures AttestNode while the anonymous pool is full (the default
// 1,024 challenges, from 4 sources in each of 64 networks), so that every call evicts one:
// the cost of the shares under a flood. Run it with a fixed count:
//
//	go test -run '^$' -bench AttestFullPool -benchtime=5000x ./edge/server/
func BenchmarkAttestFullPool(b *testing.B) {
	h := newHarness(b, func(o *Options) { o.AttestPerMinute = 10000 })
	var clients []edgepb.NodeClusterServiceClient
	for _, src := range addresses(span(1, 64), 4) {
		clients = append(clients, h.clientFrom(src))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	d := newDaemon(h)
	attest := func(i int) error {
		_, _, err := d.attestWith(ctx, clients[i%len(clients)], "")
		return err
	}
	for i := range 2 * testOptions().MaxPendingChallenges { // past the pool's 1,024
		if err := attest(i); err != nil {
			b.Fatal(err)
		}
	}
	if n := h.srv.challenges.Len(quota.Anonymous, time.Now()); n != testOptions().MaxPendingChallenges {
		b.Fatalf("the pool holds %d", n)
	}
	var next atomic.Int64
	b.SetParallelism(2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := attest(int(next.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
