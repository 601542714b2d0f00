// Package quota decides which attestation challenges may wait for their answer.
//
// Anyone may call AttestNode, and the relay keeps each challenge it issues until it is
// answered or expires (300 s), so the pending challenges are bounded, and shared so that no
// group of callers can hold them all:
//
//   - Anonymous callers share one pool. Within it, a source (an IPv4 address, an IPv6 /64)
//     holds at most PerSource challenges and a network (an IPv4 /24, an IPv6 /48) at most
//     PerNetwork.
//   - Callers that show a valid enrollment or node token share a reserved pool that
//     anonymous callers cannot touch; each token holds at most PerToken challenges there.
//
// A new challenge is never refused for want of room: when its share is full, the oldest
// pending challenge of that share is evicted, and when its pool is full, the oldest of the
// pool's most loaded network (for the reserved pool: the oldest of the pool). An honest
// daemon answers its challenge within a round trip, so what is evicted is in practice what
// nobody answers; a flood shortens the life of the flood's own challenges first, and a
// caller is never locked out for the 300 s a challenge lives. How fast anyone may ask is
// the rate limiter's business (package ratelimit), not this package's.
//
// The Ledger only counts: it holds an Entry (id, pool, source, network, token, issue time)
// per pending challenge, at most Anonymous + Reserved of them (plus those restored over the
// bounds at start-up, until they are evicted or expire). The challenges themselves are the
// caller's (the store).
package quota

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Pool is the pool a challenge is counted in.
type Pool uint8

// The pools.
const (
	// Anonymous is the pool of callers without a token.
	Anonymous Pool = iota + 1
	// Reserved is the pool of callers with a valid enrollment or node token.
	Reserved
)

// String returns "anonymous" or "reserved" (the names kept in the store).
func (p Pool) String() string {
	switch p {
	case Anonymous:
		return "anonymous"
	case Reserved:
		return "reserved"
	}
	return fmt.Sprintf("pool(%d)", uint8(p))
}

// ParsePool returns the pool named s (Pool.String); "" is Anonymous (challenges stored
// before pools existed).
func ParsePool(s string) (Pool, bool) {
	switch s {
	case "", "anonymous":
		return Anonymous, true
	case "reserved":
		return Reserved, true
	}
	return 0, false
}

// Share names what was full when a challenge was evicted (a metric label).
type Share string

// The shares.
const (
	BySource  Share = "source"
	ByNetwork Share = "network"
	ByToken   Share = "token"
	ByPool    Share = "pool"
)

// Limits are the bounds of a Ledger. New raises a bound below 1 to 1 and lowers PerSource
// to PerNetwork, PerNetwork to Anonymous and PerToken to Reserved.
type Limits struct {
	// Anonymous bounds the anonymous pool; PerSource and PerNetwork the challenges of one
	// source and one network in it.
	Anonymous, PerSource, PerNetwork int
	// Reserved bounds the reserved pool; PerToken the challenges of one token in it.
	Reserved, PerToken int
	// TTL is how long a challenge lives after its issue.
	TTL time.Duration
}

// Entry is one pending challenge as the Ledger counts it.
type Entry struct {
	ID   string
	Pool Pool
	// Source and Network are the caller's (anonymous pool); an empty Network is Source.
	Source, Network string
	// Token identifies the caller's token (reserved pool).
	Token  string
	Issued time.Time
}

// Eviction is a challenge evicted to make room, and the share that was full.
type Eviction struct {
	Entry
	Share Share
}

// ErrDuplicate is returned by Admit for an id the Ledger holds.
var ErrDuplicate = errors.New("quota: challenge id already pending")

// Ledger counts the pending challenges. It is safe for concurrent use.
type Ledger struct {
	lim Limits

	mu       sync.Mutex
	byID     map[string]*Entry
	pools    [Reserved + 1]group
	sources  map[string]*group
	networks map[string]*group
	tokens   map[string]*group
}

// group is the entries of one pool, source, network or token, oldest issued first.
type group []*Entry

// New returns an empty Ledger with the limits lim.
func New(lim Limits) *Ledger {
	lim.Anonymous = max(lim.Anonymous, 1)
	lim.PerNetwork = min(max(lim.PerNetwork, 1), lim.Anonymous)
	lim.PerSource = min(max(lim.PerSource, 1), lim.PerNetwork)
	lim.Reserved = max(lim.Reserved, 1)
	lim.PerToken = min(max(lim.PerToken, 1), lim.Reserved)
	return &Ledger{
		lim: lim, byID: make(map[string]*Entry),
		sources: make(map[string]*group), networks: make(map[string]*group), tokens: make(map[string]*group),
	}
}

// Limits returns the ledger's limits, as New adjusted them.
func (l *Ledger) Limits() Limits { return l.lim }

// Admit makes room for e and records it. It forgets the challenges expired at now, chooses
// the challenges to evict, and calls store with their ids while it holds the ledger (store
// must store e and delete the evicted challenges, in one transaction). When store fails,
// nothing changes and its error is returned; else the evictions are returned. An entry of
// an unknown pool is counted as anonymous.
func (l *Ledger) Admit(e Entry, now time.Time, store func(evict []string) error) ([]Eviction, error) {
	if e.Pool != Reserved {
		e.Pool = Anonymous
	}
	if e.Network == "" {
		e.Network = e.Source
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	if _, dup := l.byID[e.ID]; dup {
		return nil, fmt.Errorf("%w: %s", ErrDuplicate, e.ID)
	}
	evicted := l.makeRoom(&e)
	ids := make([]string, len(evicted))
	for i, v := range evicted {
		ids[i] = v.ID
	}
	if err := store(ids); err != nil {
		for _, v := range evicted {
			l.add(&v.Entry)
		}
		return nil, err
	}
	l.add(&e)
	return evicted, nil
}

// makeRoom removes (and returns) the entries to evict so that e fits in its shares.
func (l *Ledger) makeRoom(e *Entry) []Eviction {
	var out []Eviction
	evict := func(v *Entry, why Share) {
		l.remove(v)
		out = append(out, Eviction{Entry: *v, Share: why})
	}
	if e.Pool == Reserved {
		for g := l.tokens[e.Token]; g != nil && len(*g) >= l.lim.PerToken; g = l.tokens[e.Token] {
			evict((*g)[0], ByToken)
		}
		for p := &l.pools[Reserved]; len(*p) >= l.lim.Reserved; {
			evict((*p)[0], ByPool)
		}
		return out
	}
	for g := l.sources[e.Source]; g != nil && len(*g) >= l.lim.PerSource; g = l.sources[e.Source] {
		evict((*g)[0], BySource)
	}
	for g := l.networks[e.Network]; g != nil && len(*g) >= l.lim.PerNetwork; g = l.networks[e.Network] {
		evict((*g)[0], ByNetwork)
	}
	for len(l.pools[Anonymous]) >= l.lim.Anonymous {
		evict(l.mostLoaded(e.Network), ByPool)
	}
	return out
}

// mostLoaded returns the oldest entry of the network holding the most anonymous entries,
// counting the newcomer in its network newNet: of two networks holding as many, the one
// whose oldest entry is older. The anonymous pool must not be empty.
func (l *Ledger) mostLoaded(newNet string) *Entry {
	var best *Entry
	bestN := 0
	for name, g := range l.networks {
		n := len(*g)
		if name == newNet {
			n++
		}
		if oldest := (*g)[0]; n > bestN || n == bestN && oldest.Issued.Before(best.Issued) {
			best, bestN = oldest, n
		}
	}
	return best
}

// Remove forgets the challenge id (answered, or gone from the store); an unknown id is
// ignored.
func (l *Ledger) Remove(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.byID[id]; ok {
		l.remove(e)
	}
}

// Restore records challenges found in the store at start-up, as they are: they may exceed
// the bounds (the limits changed), until the next admissions evict them or they expire.
// Entries expired at now and ids already held are skipped; it returns how many it kept.
func (l *Ledger) Restore(entries []Entry, now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	kept := 0
	for _, e := range entries {
		if e.Pool != Reserved {
			e.Pool = Anonymous
		}
		if e.Network == "" {
			e.Network = e.Source
		}
		if _, dup := l.byID[e.ID]; dup || !now.Before(e.Issued.Add(l.lim.TTL)) {
			continue
		}
		l.add(&e)
		kept++
	}
	return kept
}

// Len returns the challenges of pool p pending at now.
func (l *Ledger) Len(p Pool, now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	if p != Anonymous && p != Reserved {
		return 0
	}
	return len(l.pools[p])
}

// Counts returns the challenges pending at now of a source, a network and a token (0 for
// those it does not hold).
func (l *Ledger) Counts(source, network, token string, now time.Time) (bySource, byNetwork, byToken int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	n := func(g *group) int {
		if g == nil {
			return 0
		}
		return len(*g)
	}
	return n(l.sources[source]), n(l.networks[network]), n(l.tokens[token])
}

// expire forgets the entries whose TTL has passed at now (each pool is ordered by issue).
func (l *Ledger) expire(now time.Time) {
	for _, p := range []Pool{Anonymous, Reserved} {
		for g := &l.pools[p]; len(*g) > 0 && !now.Before((*g)[0].Issued.Add(l.lim.TTL)); {
			l.remove((*g)[0])
		}
	}
}

func (l *Ledger) add(e *Entry) {
	l.byID[e.ID] = e
	l.pools[e.Pool].insert(e)
	if e.Pool == Reserved {
		insertIn(l.tokens, e.Token, e)
		return
	}
	insertIn(l.sources, e.Source, e)
	insertIn(l.networks, e.Network, e)
}

func (l *Ledger) remove(e *Entry) {
	delete(l.byID, e.ID)
	l.pools[e.Pool].delete(e)
	if e.Pool == Reserved {
		deleteFrom(l.tokens, e.Token, e)
		return
	}
	deleteFrom(l.sources, e.Source, e)
	deleteFrom(l.networks, e.Network, e)
}

func insertIn(m map[string]*group, key string, e *Entry) {
	g, ok := m[key]
	if !ok {
		g = new(group)
		m[key] = g
	}
	g.insert(e)
}

func deleteFrom(m map[string]*group, key string, e *Entry) {
	if g, ok := m[key]; ok {
		g.delete(e)
		if len(*g) == 0 {
			delete(m, key)
		}
	}
}

// insert adds e in issue order (after the entries issued at the same time): at the end
// unless the clock went back.
func (g *group) insert(e *Entry) {
	i := len(*g)
	for i > 0 && e.Issued.Before((*g)[i-1].Issued) {
		i--
	}
	*g = slices.Insert(*g, i, e)
}

func (g *group) delete(e *Entry) {
	if i := slices.Index(*g, e); i >= 0 {
		*g = slices.Delete(*g, i, i+1)
	}
}
