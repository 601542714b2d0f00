package uploadslots

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

func client(s string) Client { return ClientOf(s + ":1234") }

func TestClientOf(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"192.0.2.7:80", "192.0.2.7/32"},
		{"[::ffff:192.0.2.7]:80", "192.0.2.7/32"},
		{"[2001:db8:1:2:3:4:5:6]:80", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:80", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"[::1]:80", "::/64"},
		{"127.0.0.1:80", "127.0.0.1/32"},
		{"garbage", "unknown"},
		{"", "unknown"},
		{"192.0.2.7", "unknown"}, // no port: not what net/http gives
	}
	for _, tt := range tests {
		if got := ClientOf(tt.addr).String(); got != tt.want {
			t.Errorf("ClientOf(%q) = %s, want %s", tt.addr, got, tt.want)
		}
	}
	if ClientOf("[2001:db8:1:2::1]:1") != ClientOf("[2001:db8:1:2::99]:2") {
		t.Error("two addresses of one /64 are two clients")
	}
	if ClientOf("192.0.2.1:1") == ClientOf("192.0.2.2:1") {
		t.Error("two IPv4 addresses are one client")
	}
}

// acquire is Acquire with a short wait and no cut.
func acquire(p *Pool, c Client, wait time.Duration) (*Slot, error) {
	return p.Acquire(context.Background(), c, wait, nil)
}

// waitFor runs Acquire in a goroutine and returns a channel with its result.
func waitFor(ctx context.Context, p *Pool, c Client, wait time.Duration, cut func()) <-chan result {
	ch := make(chan result, 1)
	go func() {
		s, err := p.Acquire(ctx, c, wait, cut)
		ch <- result{s, err}
	}()
	return ch
}

type result struct {
	slot *Slot
	err  error
}

// settle waits until n uploads are waiting in p.
func settle(t *testing.T, p *Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, w := p.InUse(); w == n {
			return
		}
		if time.Now().After(deadline) {
			_, w := p.InUse()
			t.Fatalf("%d uploads waiting, want %d", w, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func recv(t *testing.T, ch <-chan result, what string) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no result", what)
		return result{}
	}
}

func TestNewBounds(t *testing.T) {
	tests := []struct{ slots, per, wantSlots, wantPer int }{
		{64, 16, 64, 16}, {0, 0, 1, 1}, {4, 9, 4, 4}, {3, -1, 3, 1},
	}
	for _, tt := range tests {
		o := New(Options{Slots: tt.slots, PerClient: tt.per}).Options()
		if o.Slots != tt.wantSlots || o.PerClient != tt.wantPer {
			t.Errorf("New(%d, %d) = %d, %d; want %d, %d", tt.slots, tt.per, o.Slots, o.PerClient, tt.wantSlots, tt.wantPer)
		}
	}
}

// A client at its share waits while another client takes a free slot at once; a released slot
// goes to the first waiter that may take it.
func TestPerClientShare(t *testing.T) {
	p := New(Options{Slots: 3, PerClient: 2})
	a, b := client("192.0.2.1"), client("192.0.2.2")
	a1, err := acquire(p, a, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := acquire(p, a, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a3 := waitFor(context.Background(), p, a, 5*time.Second, nil)
	settle(t, p, 1)
	start := time.Now()
	b1, err := acquire(p, b, time.Second) // a waits, yet b goes first: a is at its share
	if err != nil || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("client b behind client a at its share: %v after %s", err, time.Since(start))
	}
	b2 := waitFor(context.Background(), p, b, 5*time.Second, nil) // no slot left at all
	settle(t, p, 2)
	if held, waiting := p.InUse(); held != 3 || waiting != 2 || p.Held(a) != 2 || p.Held(b) != 1 {
		t.Fatalf("held %d waiting %d (a %d, b %d), want 3, 2 (2, 1)", held, waiting, p.Held(a), p.Held(b))
	}
	// b1 leaves: a's waiter is first in line but a is at its share, so b's waiter gets it.
	b1.Release()
	r := recv(t, b2, "b's waiter")
	if r.err != nil || r.slot.Client() != b {
		t.Fatalf("b's waiter: %+v", r)
	}
	a1.Release()
	if r := recv(t, a3, "a's waiter"); r.err != nil || r.slot.Client() != a {
		t.Fatalf("a's waiter: %+v", r)
	}
	a1.Release() // a second release does nothing
	if held, _ := p.InUse(); held != 3 {
		t.Errorf("held %d after a double release, want 3", held)
	}
	a2.Release()
	if held, waiting := p.InUse(); held != 2 || waiting != 0 {
		t.Errorf("held %d waiting %d, want 2, 0", held, waiting)
	}
}

// Waiters are served in arrival order.
func TestArrivalOrder(t *testing.T) {
	p := New(Options{Slots: 1, PerClient: 1})
	first, err := acquire(p, client("192.0.2.1"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var chs []<-chan result
	for i := range 5 {
		chs = append(chs, waitFor(context.Background(), p, client(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).String()), 5*time.Second, nil))
		settle(t, p, i+1)
	}
	first.Release()
	for i, ch := range chs {
		r := recv(t, ch, "waiter")
		want := client(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).String())
		if r.err != nil || r.slot.Client() != want {
			t.Fatalf("grant %d went to %v (%v), want %v", i, r.slot.Client(), r.err, want)
		}
		r.slot.Release()
	}
}

// A free slot is taken even with the context ended (a half-closed client); with no free slot,
// an ended context gives ErrGone at once, a context ending while waiting gives ErrGone, and a
// wait running out gives ErrBusy.
func TestAcquireEndings(t *testing.T) {
	p := New(Options{Slots: 1, PerClient: 1})
	c := client("192.0.2.1")
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for range 100 { // not a coin toss
		s, err := p.Acquire(done, c, time.Second, nil)
		if err != nil {
			t.Fatalf("free slot, ended context: %v", err)
		}
		s.Release()
	}
	s, err := acquire(p, c, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	other := client("192.0.2.2")
	if _, err := p.Acquire(done, other, time.Second, nil); !errors.Is(err, ErrGone) {
		t.Errorf("no free slot, ended context: %v, want ErrGone", err)
	}
	start := time.Now()
	if _, err := acquire(p, other, 100*time.Millisecond); !errors.Is(err, ErrBusy) || time.Since(start) < 100*time.Millisecond {
		t.Errorf("wait ran out: %v after %s, want ErrBusy after 100ms", err, time.Since(start))
	}
	ctx, cancelWait := context.WithCancel(context.Background())
	ch := waitFor(ctx, p, other, 5*time.Second, nil)
	settle(t, p, 1)
	cancelWait()
	if r := recv(t, ch, "cancelled waiter"); !errors.Is(r.err, ErrGone) {
		t.Errorf("context ended while waiting: %v, want ErrGone", r.err)
	}
	if _, w := p.InUse(); w != 0 {
		t.Errorf("%d waiting after the waiters left", w)
	}
	s.Release()
	if held, _ := p.InUse(); held != 0 {
		t.Errorf("%d held after all released", held)
	}
}

// TestClose: a closed pool answers its waiters, and every later request that finds no free
// slot, with ErrClosed at once; a free slot is still taken, and a slot held stays held until
// it is released.
func TestClose(t *testing.T) {
	p := New(Options{Slots: 1, PerClient: 1})
	s, err := acquire(p, client("192.0.2.1"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ch := waitFor(context.Background(), p, client("192.0.2.2"), time.Minute, nil)
	settle(t, p, 1)
	start := time.Now()
	p.Close()
	p.Close() // twice is fine
	if r := recv(t, ch, "waiter at close"); !errors.Is(r.err, ErrClosed) || time.Since(start) > time.Second {
		t.Errorf("waiter at close: %v after %s, want ErrClosed at once", r.err, time.Since(start))
	}
	if held, waiting := p.InUse(); held != 1 || waiting != 0 {
		t.Errorf("after close: %d held, %d waiting; want 1, 0", held, waiting)
	}
	if _, err := acquire(p, client("192.0.2.3"), time.Minute); !errors.Is(err, ErrClosed) {
		t.Errorf("no free slot after close: %v, want ErrClosed at once", err)
	}
	s.Release()
	s, err = acquire(p, client("192.0.2.3"), time.Second)
	if err != nil {
		t.Errorf("free slot after close: %v, want it taken", err)
	} else {
		s.Release()
	}
}

// holder takes a slot for c whose cut flag is set when the pool cuts it.
func holder(t *testing.T, p *Pool, c Client) (*Slot, *atomic.Bool) {
	t.Helper()
	var cut atomic.Bool
	s, err := p.Acquire(context.Background(), c, time.Second, func() { cut.Store(true) })
	if err != nil {
		t.Fatal(err)
	}
	return s, &cut
}

// With every slot held, a waiter that may take one makes the pool cut the slowest holder below
// the rate once it has held its slot for PreemptAfter; fast holders, young holders and holders
// above the rate are kept, and a waiter at its own share cuts nobody.
func TestPreempt(t *testing.T) {
	const after = 100 * time.Millisecond
	p := New(Options{Slots: 3, PerClient: 2, PreemptBelow: 1000, PreemptAfter: after})
	a, b, c := client("192.0.2.1"), client("192.0.2.2"), client("192.0.2.3")
	fast, fastCut := holder(t, p, a)
	slow, slowCut := holder(t, p, a)
	slower, slowerCut := holder(t, p, b)

	// a is at its share: its waiter cuts nobody.
	aw := waitFor(context.Background(), p, a, 5*time.Second, nil)
	settle(t, p, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // fast sends 1 MB/s, slow 500 B/s, slower 100 B/s
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				fast.Add(10000)
				slow.Add(5)
				slower.Add(1)
			}
		}
	}()
	time.Sleep(3 * after)
	if slowCut.Load() || slowerCut.Load() || fastCut.Load() {
		t.Fatal("a holder was cut for a waiter at its own share")
	}

	// c may take a slot: the slowest holder (slower, client b) is cut, and only it.
	start := time.Now()
	cw := waitFor(context.Background(), p, c, 5*time.Second, nil)
	for !slowerCut.Load() {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the slowest holder was not cut")
		}
		time.Sleep(time.Millisecond)
	}
	if slowCut.Load() || fastCut.Load() {
		t.Errorf("cut: slow %v fast %v, want only the slowest", slowCut.Load(), fastCut.Load())
	}
	time.Sleep(3 * after) // the cut holder has not left yet: nobody else is cut meanwhile
	if slowCut.Load() {
		t.Error("a second holder was cut for the same waiter")
	}
	slower.Release()
	r := recv(t, cw, "c's waiter")
	if r.err != nil || r.slot.Client() != c {
		t.Fatalf("c's waiter: %+v", r)
	}
	// a's waiter is still at its share; c's new slot is young: nobody is cut.
	time.Sleep(after / 2)
	if slowCut.Load() || fastCut.Load() {
		t.Error("a holder was cut with no waiter that may take its slot")
	}
	fast.Release()
	if r := recv(t, aw, "a's waiter"); r.err != nil {
		t.Fatal(r.err)
	} else {
		r.slot.Release()
	}
	slow.Release()
	r.slot.Release()
}

// Without PreemptBelow nobody is ever cut.
func TestNoPreempt(t *testing.T) {
	p := New(Options{Slots: 1, PerClient: 1, PreemptAfter: time.Millisecond})
	s, cut := holder(t, p, client("192.0.2.1"))
	if _, err := acquire(p, client("192.0.2.2"), 100*time.Millisecond); !errors.Is(err, ErrBusy) {
		t.Errorf("waiter: %v, want ErrBusy", err)
	}
	if cut.Load() {
		t.Error("a holder was cut with preemption off")
	}
	s.Release()
}

// BenchmarkAcquireRelease measures taking and giving back a free slot, from many goroutines
// and clients at once.
func BenchmarkAcquireRelease(b *testing.B) {
	p := New(Options{Slots: 64, PerClient: 64, PreemptBelow: 16 << 10, PreemptAfter: 30 * time.Second})
	var n atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := n.Add(1)
		c := client(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String())
		for pb.Next() {
			s, err := p.Acquire(context.Background(), c, time.Second, func() {})
			if err != nil {
				b.Error(err)
				return
			}
			s.Add(1)
			s.Release()
		}
	})
}

// pressure is a Pressure a test turns on and off.
type pressure struct{ on atomic.Bool }

func (p *pressure) Near() bool { return p.on.Load() }

// TestPressure: near the memory budget no slot is handed out, though slots are free; an upload
// waits, gets its slot once the pressure goes, or ErrMemory when its wait runs out first.
func TestPressure(t *testing.T) {
	var pr pressure
	p := New(Options{Slots: 4, PerClient: 4, Pressure: &pr})
	a := client("192.0.2.1")
	pr.on.Store(true)
	if s, err := acquire(p, a, 100*time.Millisecond); !errors.Is(err, ErrMemory) || s != nil {
		t.Fatalf("near the budget: %v, %v; want ErrMemory", s, err)
	}
	if held, waiting := p.InUse(); held != 0 || waiting != 0 {
		t.Fatalf("after ErrMemory: %d held, %d waiting", held, waiting)
	}
	ch := waitFor(context.Background(), p, a, 10*time.Second, nil)
	settle(t, p, 1)
	time.Sleep(3 * pressureRecheck)
	select {
	case r := <-ch:
		t.Fatalf("a slot was handed out near the budget: %+v", r)
	default:
	}
	pr.on.Store(false)
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("after the pressure went: %v", r.err)
		}
		r.slot.Release()
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting upload got no slot after the pressure went")
	}
	// A busy pool without pressure still answers ErrBusy.
	s1, _ := acquire(p, a, 0)
	s2, _ := acquire(p, a, 0)
	s3, _ := acquire(p, a, 0)
	s4, _ := acquire(p, a, 0)
	if _, err := acquire(p, a, 20*time.Millisecond); !errors.Is(err, ErrBusy) {
		t.Errorf("busy pool: %v, want ErrBusy", err)
	}
	for _, s := range []*Slot{s1, s2, s3, s4} {
		s.Release()
	}
}
