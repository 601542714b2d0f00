package quota

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)

func anon(id, source, network string, at time.Duration) Entry {
	return Entry{ID: id, Pool: Anonymous, Source: source, Network: network, Issued: t0.Add(at)}
}

func reserved(id, token string, at time.Duration) Entry {
	return Entry{ID: id, Pool: Reserved, Token: token, Issued: t0.Add(at)}
}

// admit admits e at its issue time, storing nothing; it returns the evicted ids and shares.
func admit(t *testing.T, l *Ledger, e Entry) []string {
	t.Helper()
	var stored []string
	ev, err := l.Admit(e, e.Issued, func(evict []string) error { stored = evict; return nil })
	if err != nil {
		t.Fatalf("Admit(%s): %v", e.ID, err)
	}
	var out []string
	for i, v := range ev {
		if stored[i] != v.ID {
			t.Fatalf("store got %v, evictions %v", stored, ev)
		}
		out = append(out, v.ID+"/"+string(v.Share))
	}
	return out
}

func TestAdmit(t *testing.T) {
	lim := Limits{Anonymous: 6, PerSource: 2, PerNetwork: 3, Reserved: 3, PerToken: 2, TTL: 300 * time.Second}
	type step struct {
		e    Entry
		want []string // evictions, "id/share"
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a source beyond its share evicts its own oldest", []step{
			{anon("a1", "10.0.0.1", "10.0.0.0/24", 0), nil},
			{anon("a2", "10.0.0.1", "10.0.0.0/24", 1), nil},
			{anon("a3", "10.0.0.1", "10.0.0.0/24", 2), []string{"a1/source"}},
			{anon("a4", "10.0.0.1", "10.0.0.0/24", 3), []string{"a2/source"}},
		}},
		{"a network beyond its share evicts its own oldest", []step{
			{anon("a1", "10.0.0.1", "10.0.0.0/24", 0), nil},
			{anon("b1", "10.0.0.2", "10.0.0.0/24", 1), nil},
			{anon("c1", "10.0.0.3", "10.0.0.0/24", 2), nil},
			{anon("x1", "10.9.0.1", "10.9.0.0/24", 3), nil},
			{anon("d1", "10.0.0.4", "10.0.0.0/24", 4), []string{"a1/network"}},
		}},
		{"a full pool evicts the oldest of the most loaded network", []step{
			{anon("x1", "10.9.0.1", "10.9.0.0/24", 0), nil}, // the oldest of all, in a quiet network
			{anon("a1", "10.0.0.1", "10.0.0.0/24", 1), nil},
			{anon("a2", "10.0.0.2", "10.0.0.0/24", 2), nil},
			{anon("a3", "10.0.0.3", "10.0.0.0/24", 3), nil},
			{anon("b1", "10.1.0.1", "10.1.0.0/24", 4), nil},
			{anon("b2", "10.1.0.2", "10.1.0.0/24", 5), nil},
			{anon("c1", "10.2.0.1", "10.2.0.0/24", 6), []string{"a1/pool"}},
			{anon("c2", "10.2.0.2", "10.2.0.0/24", 7), []string{"a2/pool"}}, // a and b hold 2, c 2+1: a is older
			{anon("c3", "10.2.0.3", "10.2.0.0/24", 8), []string{"c1/pool"}}, // c would hold 3: its own oldest
		}},
		{"the reserved pool is apart", []step{
			{anon("a1", "10.0.0.1", "10.0.0.0/24", 0), nil},
			{anon("a2", "10.0.0.2", "10.0.0.0/24", 1), nil},
			{anon("b1", "10.1.0.1", "10.1.0.0/24", 2), nil},
			{anon("b2", "10.1.0.2", "10.1.0.0/24", 3), nil},
			{anon("c1", "10.2.0.1", "10.2.0.0/24", 4), nil},
			{anon("c2", "10.2.0.2", "10.2.0.0/24", 5), nil},
			{reserved("t1", "tok-1", 6), nil},
			{reserved("t2", "tok-2", 7), nil},
			{anon("d1", "10.3.0.1", "10.3.0.0/24", 8), []string{"a1/pool"}},
			{reserved("t3", "tok-3", 9), nil},
			{reserved("t4", "tok-4", 10), []string{"t1/pool"}},
		}},
		{"a token beyond its share evicts its own oldest", []step{
			{reserved("t1", "tok-1", 0), nil},
			{reserved("u1", "tok-2", 1), nil},
			{reserved("t2", "tok-1", 2), nil},
			{reserved("t3", "tok-1", 3), []string{"t1/token"}},
		}},
		{"an expired challenge makes room by itself", []step{
			{anon("a1", "10.0.0.1", "10.0.0.0/24", 0), nil},
			{anon("a2", "10.0.0.1", "10.0.0.0/24", 1), nil},
			{anon("a3", "10.0.0.1", "10.0.0.0/24", 300*time.Second), nil},
			{anon("a4", "10.0.0.1", "10.0.0.0/24", 300*time.Second), []string{"a2/source"}},
		}},
		{"no network: the source is the network", []step{
			{anon("a1", "10.0.0.1", "", 0), nil},
			{anon("a2", "10.0.0.1", "", 1), nil},
			{anon("a3", "10.0.0.1", "", 2), []string{"a1/source"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := New(lim)
			for _, st := range tc.steps {
				if got := admit(t, l, st.e); !slices.Equal(got, st.want) {
					t.Fatalf("Admit(%s) evicted %v, want %v", st.e.ID, got, st.want)
				}
			}
		})
	}
}

func TestAdmitStoreFails(t *testing.T) {
	l := New(Limits{Anonymous: 2, PerSource: 2, PerNetwork: 2, Reserved: 1, PerToken: 1, TTL: time.Minute})
	admit(t, l, anon("a1", "s", "n", 0))
	admit(t, l, anon("a2", "s", "n", 1))
	boom := errors.New("disk full")
	ev, err := l.Admit(anon("a3", "s", "n", 2), t0.Add(2), func(evict []string) error {
		if !slices.Equal(evict, []string{"a1"}) {
			t.Errorf("evict = %v", evict)
		}
		return boom
	})
	if !errors.Is(err, boom) || ev != nil {
		t.Fatalf("Admit = %v, %v; want the store's error", ev, err)
	}
	if s, n, _ := l.Counts("s", "n", "", t0.Add(2)); s != 2 || n != 2 || l.Len(Anonymous, t0.Add(2)) != 2 {
		t.Fatalf("after a failed store: source %d, network %d", s, n)
	}
	if got := admit(t, l, anon("a3", "s", "n", 3)); !slices.Equal(got, []string{"a1/source"}) {
		t.Fatalf("evicted %v after a failed store, want a1 still there", got)
	}
	if _, err := l.Admit(anon("a3", "x", "y", 4), t0.Add(4), func([]string) error { return nil }); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("a pending id again: %v", err)
	}
}

func TestRemoveRestoreLen(t *testing.T) {
	lim := Limits{Anonymous: 3, PerSource: 3, PerNetwork: 3, Reserved: 2, PerToken: 2, TTL: time.Minute}
	l := New(lim)
	kept := l.Restore([]Entry{
		anon("a1", "s", "n", 0), anon("a2", "s", "n", time.Second), anon("a3", "s", "n", 2*time.Second),
		anon("a4", "s", "", 3*time.Second),      // over the bounds: kept
		anon("a1", "s", "n", 4*time.Second),     // a duplicate
		anon("old", "s", "n", -time.Minute),     // expired
		{ID: "legacy", Source: "s", Issued: t0}, // no pool: anonymous
		reserved("t1", "tok", 0),
	}, t0.Add(5*time.Second))
	if kept != 6 {
		t.Fatalf("Restore kept %d, want 6", kept)
	}
	now := t0.Add(5 * time.Second)
	if n := l.Len(Anonymous, now); n != 5 {
		t.Fatalf("anonymous after restore = %d, want 5", n)
	}
	// The next admission brings the pool back under its bound.
	if got := admit(t, l, anon("b1", "s2", "n2", 6*time.Second)); len(got) != 3 {
		t.Fatalf("evicted %v, want 3 (down to 2 + the new one)", got)
	}
	if n := l.Len(Anonymous, now); n != 3 {
		t.Fatalf("anonymous = %d, want 3", n)
	}
	l.Remove("b1")
	l.Remove("unknown")
	if n := l.Len(Anonymous, now); n != 2 {
		t.Fatalf("anonymous after Remove = %d, want 2", n)
	}
	if n := l.Len(Reserved, now); n != 1 {
		t.Fatalf("reserved = %d, want 1", n)
	}
	if n := l.Len(Anonymous, t0.Add(time.Hour)); n != 0 || l.Len(Reserved, t0.Add(time.Hour)) != 0 || l.Len(0, now) != 0 {
		t.Fatalf("pending an hour later = %d", n)
	}
	if len(l.byID) != 0 || len(l.sources) != 0 || len(l.networks) != 0 || len(l.tokens) != 0 {
		t.Fatalf("empty ledger still holds %d ids, %d sources, %d networks, %d tokens", len(l.byID), len(l.sources), len(l.networks), len(l.tokens))
	}
}

func TestLimitsAdjusted(t *testing.T) {
	for _, tc := range []struct{ in, want Limits }{
		{Limits{}, Limits{Anonymous: 1, PerSource: 1, PerNetwork: 1, Reserved: 1, PerToken: 1}},
		{Limits{Anonymous: 10, PerSource: 50, PerNetwork: 20, Reserved: 4, PerToken: 9},
			Limits{Anonymous: 10, PerSource: 10, PerNetwork: 10, Reserved: 4, PerToken: 4}},
		{Limits{Anonymous: 1024, PerSource: 8, PerNetwork: 32, Reserved: 256, PerToken: 2, TTL: time.Minute},
			Limits{Anonymous: 1024, PerSource: 8, PerNetwork: 32, Reserved: 256, PerToken: 2, TTL: time.Minute}},
	} {
		if got := New(tc.in).Limits(); got != tc.want {
			t.Errorf("New(%+v).Limits() = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	for _, p := range []Pool{Anonymous, Reserved} {
		if got, ok := ParsePool(p.String()); !ok || got != p {
			t.Errorf("ParsePool(%q) = %v, %v", p, got, ok)
		}
	}
	if got, ok := ParsePool(""); !ok || got != Anonymous {
		t.Errorf("ParsePool(\"\") = %v, %v", got, ok)
	}
	if _, ok := ParsePool("other"); ok {
		t.Error("ParsePool(\"other\") accepted")
	}
}

// TestBoundsHold: whatever a crowd of callers does (many sources and networks, tokens,
// answers, time passing), no share and no pool ever exceeds its bound, the ledger's maps
// hold nothing but pending entries, and a token caller always gets its challenge in.
func TestBoundsHold(t *testing.T) {
	lim := Limits{Anonymous: 40, PerSource: 3, PerNetwork: 8, Reserved: 10, PerToken: 2, TTL: 30 * time.Second}
	l := New(lim)
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	var ids []string
	for i := range 20000 {
		now = now.Add(time.Duration(rng.IntN(20)) * time.Millisecond)
		id := fmt.Sprint("c", i)
		var e Entry
		if rng.IntN(10) == 0 {
			e = Entry{ID: id, Pool: Reserved, Token: fmt.Sprint("tok", rng.IntN(30)), Issued: now}
		} else {
			net := rng.IntN(12)
			e = Entry{ID: id, Pool: Anonymous, Source: fmt.Sprintf("10.%d.0.%d", net, rng.IntN(6)), Network: fmt.Sprintf("10.%d.0.0/24", net), Issued: now}
		}
		if _, err := l.Admit(e, now, func([]string) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if s, n, tk := l.Counts(e.Source, e.Network, e.Token, now); e.Pool == Reserved && tk == 0 || e.Pool == Anonymous && (s == 0 || n == 0) {
			t.Fatalf("step %d: the admitted challenge is not counted", i)
		}
		ids = append(ids, id)
		if rng.IntN(4) == 0 { // an answer
			l.Remove(ids[rng.IntN(len(ids))])
		}
		l.mu.Lock()
		s, n, tk := 0, 0, 0
		for _, g := range l.sources {
			s = max(s, len(*g))
		}
		for _, g := range l.networks {
			n = max(n, len(*g))
		}
		for _, g := range l.tokens {
			tk = max(tk, len(*g))
		}
		a, r := len(l.pools[Anonymous]), len(l.pools[Reserved])
		total := len(l.byID)
		l.mu.Unlock()
		if s > lim.PerSource || n > lim.PerNetwork || tk > lim.PerToken || a > lim.Anonymous || r > lim.Reserved || a+r != total {
			t.Fatalf("step %d: source %d, network %d, token %d, anonymous %d, reserved %d, ids %d", i, s, n, tk, a, r, total)
		}
	}
}
