// Package uploadslots shares a relay's upload slots among its clients: at most Slots uploads
// are in progress at once, one client (an IPv4 address, or an IPv6 /64) holds at most
// PerClient of them, uploads that find no slot wait in arrival order, and, when uploads wait
// and every slot is taken, the slowest holder below PreemptBelow bytes per second is cut to
// make room. Near the memory budget (Pressure), no slot is handed out: uploads wait.
package uploadslots

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-relay/keel/internal/membudget"
)

// Client identifies whom a share of the slots belongs to: an IPv4 address, or the /64 of an
// IPv6 address (one host of an IPv6 site network typically has a whole /64 to pick from).
type Client netip.Prefix

// ClientOf returns the client of a peer address as net/http gives it (RemoteAddr,
// "host:port"). An address that does not parse is one client of its own kind: all such peers
// share one share, which is what an unidentifiable peer deserves.
func ClientOf(remoteAddr string) Client {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return Client{}
	}
	a := ap.Addr().Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return Client(p)
}

// String returns the client as a prefix ("192.0.2.7/32", "2001:db8:1:2::/64"), or "unknown".
func (c Client) String() string {
	if !netip.Prefix(c).IsValid() {
		return "unknown"
	}
	return netip.Prefix(c).String()
}

// Options bound the slots.
type Options struct {
	// Slots is the number of uploads in progress at once (at least 1).
	Slots int
	// PerClient is the number of slots one client may hold at once (1 to Slots).
	PerClient int
	// PreemptBelow is the average rate, in bytes per second since it took its slot, below
	// which a holder may be cut when another upload waits and no slot is free; 0 = never.
	PreemptBelow int64
	// PreemptAfter is how long a holder keeps its slot before it may be cut: its rate is
	// judged over at least this time.
	PreemptAfter time.Duration
	// Pressure, when not nil, holds the slots back while the process is near its memory
	// budget: no slot is handed out then, and uploads wait as they do for a busy slot (their
	// wait running out while still near gives ErrMemory). Nil: never.
	Pressure membudget.Pressure
}

// pressureRecheck is how often uploads held back by memory pressure look again.
const pressureRecheck = membudget.SampleEvery

// Errors of Acquire.
var (
	// ErrBusy: no slot came free for the client within the wait.
	ErrBusy = errors.New("no upload slot came free in time")
	// ErrGone: the request's context ended while it waited (the client closed its side).
	ErrGone = errors.New("the connection was closed while the upload waited for a slot")
	// ErrClosed: the pool is closed (the relay is stopping): no slot is handed out any more.
	ErrClosed = errors.New("the relay is stopping")
	// ErrMemory: the relay stayed near its memory budget for the whole wait.
	ErrMemory = errors.New("the relay stayed near its memory budget")
)

// Pool hands out the slots. It is safe for concurrent use.
type Pool struct {
	opts Options
	now  func() time.Time

	mu      sync.Mutex
	held    map[Client]int // slots held, by client
	holders map[*Slot]struct{}
	waiting []*waiter // in arrival order
	cutting int       // holders cut but not released yet
	checked time.Time // last look for holders to cut
	closed  chan struct{}
	isShut  bool // closed is closed; under mu
}

// recheck is how often waiting uploads look for holders to cut: holders become candidates as
// they age and their rate drops. The pool looks at most this often, however many wait.
func (p *Pool) recheck() time.Duration {
	return max(min(p.opts.PreemptAfter/4, time.Second), 10*time.Millisecond)
}

// waiter is an upload waiting for a slot; slot is set (under Pool.mu) when it is granted one,
// and granted is closed then.
type waiter struct {
	client  Client
	cut     func()
	slot    *Slot
	granted chan struct{}
}

// Slot is a slot held by one upload. Report the bytes received with Add; give it back with
// Release.
type Slot struct {
	pool     *Pool
	client   Client
	since    time.Time
	bytes    atomic.Int64
	cut      func()
	isCut    bool // under pool.mu
	released bool // under pool.mu
}

// New returns a pool; Slots and PerClient are raised to at least 1, PerClient lowered to
// Slots.
func New(opts Options) *Pool {
	opts.Slots = max(opts.Slots, 1)
	opts.PerClient = min(max(opts.PerClient, 1), opts.Slots)
	return &Pool{opts: opts, now: time.Now, held: map[Client]int{}, holders: map[*Slot]struct{}{}, closed: make(chan struct{})}
}

// Close ends the waiting: uploads waiting for a slot, and any that would have to wait after,
// get ErrClosed at once. A free slot is still taken (a request in flight when the relay began
// to drain gets its grace period to finish), and slots held are unaffected. It is what a relay
// that starts to drain does, so that uploads that cannot have a slot get their answer now
// rather than at the end of the grace period.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.isShut {
		p.isShut = true
		close(p.closed)
	}
}

// Options returns the pool's bounds, as New adjusted them.
func (p *Pool) Options() Options { return p.opts }

// InUse returns the number of slots held and the number of uploads waiting.
func (p *Pool) InUse() (held, waiting int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.holders), len(p.waiting)
}

// Held returns the number of slots client holds.
func (p *Pool) Held(client Client) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held[client]
}

// Acquire returns a slot for client, waiting at most wait (0: as long as ctx lasts) in
// arrival order behind other waiting uploads that may take one. A free slot is taken even when
// ctx has ended already: a client that half-closed its connection has its request's context
// cancelled by net/http, yet its body may be all there and it still reads its answer. While
// it waits, ctx ending gives ErrGone, the wait running out ErrBusy, and Close ErrClosed (after
// Close, an upload that finds no free slot gets ErrClosed at once).
//
// cut is called, with the pool's lock held (it must be quick and must not call the pool), if
// this upload is later chosen to make room for a waiting one (see Options.PreemptBelow); the
// upload should then end soon and Release its slot.
func (p *Pool) Acquire(ctx context.Context, client Client, wait time.Duration, cut func()) (*Slot, error) {
	p.mu.Lock()
	if s := p.take(client, cut); s != nil {
		p.mu.Unlock()
		return s, nil
	}
	if p.isShut {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if ctx.Err() != nil {
		p.mu.Unlock()
		return nil, ErrGone
	}
	w := &waiter{client: client, cut: cut, granted: make(chan struct{})}
	p.waiting = append(p.waiting, w)
	p.preempt()
	p.mu.Unlock()

	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	var recheck <-chan time.Time
	if p.opts.PreemptBelow > 0 {
		t := time.NewTicker(p.recheck())
		defer t.Stop()
		recheck = t.C
	}
	var relieved <-chan time.Time
	if p.opts.Pressure != nil {
		t := time.NewTicker(pressureRecheck)
		defer t.Stop()
		relieved = t.C
	}
	for {
		var err error
		select {
		case <-w.granted:
			return w.slot, nil
		case <-recheck:
			p.mu.Lock()
			p.preempt()
			p.mu.Unlock()
			continue
		case <-relieved:
			// Slots are not released when the pressure goes: look for free ones. Near is
			// cheap and asked outside the lock; the first waiter to see it go grants.
			if !p.near() {
				p.mu.Lock()
				p.grant()
				p.mu.Unlock()
			}
			continue
		case <-ctx.Done():
			err = ErrGone
		case <-p.closed:
			err = ErrClosed
		case <-timeout:
			err = ErrBusy
			if p.near() {
				err = ErrMemory
			}
		}
		p.mu.Lock()
		if w.slot != nil { // granted meanwhile: a slot wins over the reason to stop waiting
			p.mu.Unlock()
			return w.slot, nil
		}
		p.dropWaiter(w)
		p.mu.Unlock()
		return nil, err
	}
}

// take gives client a slot if one is free and client is under its share; p.mu is held. Slots
// are handed to waiters as soon as they are released (grant), so a free slot here means that
// no waiter may take it.
func (p *Pool) take(client Client, cut func()) *Slot {
	if len(p.holders) >= p.opts.Slots || p.held[client] >= p.opts.PerClient || p.near() {
		return nil
	}
	s := &Slot{pool: p, client: client, since: p.now(), cut: cut}
	p.holders[s] = struct{}{}
	p.held[client]++
	return s
}

// grant hands free slots to the waiters that may take one, in arrival order; p.mu is held.
func (p *Pool) grant() {
	for i := 0; i < len(p.waiting) && len(p.holders) < p.opts.Slots; {
		w := p.waiting[i]
		s := p.take(w.client, w.cut)
		if s == nil {
			i++ // this client is at its share: the next waiter may go first
			continue
		}
		p.waiting = append(p.waiting[:i], p.waiting[i+1:]...)
		w.slot = s
		close(w.granted)
	}
}

// near reports whether the process is near its memory budget (never without Pressure).
func (p *Pool) near() bool { return p.opts.Pressure != nil && p.opts.Pressure.Near() }

func (p *Pool) dropWaiter(w *waiter) {
	for i, x := range p.waiting {
		if x == w {
			p.waiting = append(p.waiting[:i], p.waiting[i+1:]...)
			return
		}
	}
}

// preempt cuts slow holders for waiters that could take a slot if one were free, one holder
// per such waiter (minus the holders already cut and not yet released); p.mu is held. A holder
// is a candidate once it has held its slot for PreemptAfter, with an average rate since then
// below PreemptBelow; the slowest goes first. It looks at most once per recheck interval (the
// waiters' tickers call it), so that many waiters cost no more than one.
func (p *Pool) preempt() {
	if p.opts.PreemptBelow <= 0 || len(p.holders) < p.opts.Slots {
		return
	}
	now := p.now()
	if now.Sub(p.checked) < p.recheck()/2 {
		return
	}
	p.checked = now
	want := -p.cutting
	for _, w := range p.waiting {
		if p.held[w.client] < p.opts.PerClient {
			want++
		}
	}
	for ; want > 0; want-- {
		var victim *Slot
		var lowest float64
		for s := range p.holders {
			held := now.Sub(s.since)
			if s.isCut || held < p.opts.PreemptAfter || held <= 0 {
				continue
			}
			rate := float64(s.bytes.Load()) / held.Seconds()
			if rate >= float64(p.opts.PreemptBelow) {
				continue
			}
			if victim == nil || rate < lowest {
				victim, lowest = s, rate
			}
		}
		if victim == nil {
			return
		}
		victim.isCut = true
		p.cutting++
		if victim.cut != nil {
			victim.cut()
		}
	}
}

// Add records n more bytes received by the slot's upload.
func (s *Slot) Add(n int64) { s.bytes.Add(n) }

// Client returns the client holding the slot.
func (s *Slot) Client() Client { return s.client }

// Since returns when the slot was taken.
func (s *Slot) Since() time.Time { return s.since }

// Rate returns the slot's average rate so far, in bytes per second.
func (s *Slot) Rate() float64 {
	held := s.pool.now().Sub(s.since).Seconds()
	if held <= 0 {
		return 0
	}
	return float64(s.bytes.Load()) / held
}

// Release gives the slot back (to the first waiter that may take it); calling it again does
// nothing.
func (s *Slot) Release() {
	p := s.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	if s.isCut {
		p.cutting--
	}
	delete(p.holders, s)
	if p.held[s.client]--; p.held[s.client] <= 0 {
		delete(p.held, s.client)
	}
	p.grant()
}
