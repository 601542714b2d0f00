package storage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func edgeKey(t testing.TB) []byte {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func testDaemon(t testing.TB, nodeID, tenant string) Daemon {
	t.Helper()
	now := time.Now()
	return Daemon{
		NodeID: nodeID, Tenant: tenant, Label: "label-" + nodeID, PublicKey: edgeKey(t),
		TokenID: "tok-" + nodeID, TokenExpiry: now.Add(time.Hour),
		Capabilities: []byte{0x0a, 0x03, 'a', 'b', 'c'}, EnrolledAt: now,
	}
}

func enroll(t testing.TB, s *Store, jti string, d Daemon) {
	t.Helper()
	if err := s.Enroll(jti, time.Now().Add(15*time.Minute), d); err != nil {
		t.Fatalf("Enroll %s: %v", d.NodeID, err)
	}
}

func mustDaemon(t testing.TB, s *Store, nodeID string) Daemon {
	t.Helper()
	d, err := s.Daemon(nodeID)
	if err != nil {
		t.Fatalf("Daemon %s: %v", nodeID, err)
	}
	return d
}

func blacklisted(t testing.TB, s *Store, tokenID string) bool {
	t.Helper()
	b, err := s.IsBlacklisted(tokenID)
	if err != nil {
		t.Fatalf("IsBlacklisted %s: %v", tokenID, err)
	}
	return b
}

func sameDaemon(a, b Daemon) bool {
	ea, err1 := encodeDaemon(a)
	eb, err2 := encodeDaemon(b)
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}

func TestEnroll(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	exp := time.Now().Add(15 * time.Minute)
	first := testDaemon(t, "node-1", "tenant-a")
	first.Tags = map[string]string{"site": "paris"}
	again := testDaemon(t, "node-1", "tenant-a") // re-enrolment: new key, new token, no tags
	revoked := testDaemon(t, "node-r", "tenant-a")
	badKey := testDaemon(t, "node-2", "tenant-a")
	badKey.PublicKey = badKey.PublicKey[:31]
	badPrev := testDaemon(t, "node-2", "tenant-a")
	badPrev.PreviousKey = []byte{1}
	noTenant := testDaemon(t, "node-2", "")
	noID := testDaemon(t, "", "tenant-a")
	enroll(t, s, "jti-r", revoked)
	if _, err := s.Revoke("node-r", time.Now()); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name string
		jti  string
		exp  time.Time
		d    Daemon
		want error
	}{
		{"new daemon", "jti-1", exp, first, nil},
		{"jti redeemed twice", "jti-1", exp, testDaemon(t, "node-3", "tenant-a"), ErrReplayed},
		{"node id of another tenant", "jti-2", exp, testDaemon(t, "node-1", "tenant-b"), ErrConflict},
		{"revoked node id", "jti-3", exp, testDaemon(t, "node-r", "tenant-a"), ErrRevoked},
		{"jti of a refused enrolment is still usable", "jti-2", exp, testDaemon(t, "node-4", "tenant-b"), nil},
		{"re-enrolment for the same tenant", "jti-5", exp, again, nil},
		{"empty jti", "", exp, testDaemon(t, "node-5", "tenant-a"), ErrInvalid},
		{"jti too long", string(make([]byte, MaxEdgeIDSize+1)), exp, testDaemon(t, "node-5", "tenant-a"), ErrInvalid},
		{"no jti expiry", "jti-6", time.Time{}, testDaemon(t, "node-5", "tenant-a"), ErrInvalid},
		{"short key", "jti-6", exp, badKey, ErrInvalid},
		{"bad previous key", "jti-6", exp, badPrev, ErrInvalid},
		{"no tenant", "jti-6", exp, noTenant, ErrInvalid},
		{"no node id", "jti-6", exp, noID, ErrInvalid},
	}
	for _, st := range steps {
		err := s.Enroll(st.jti, st.exp, st.d)
		if st.want == nil && err != nil || st.want != nil && !errors.Is(err, st.want) {
			t.Errorf("%s: Enroll = %v, want %v", st.name, err, st.want)
		}
	}
	got := mustDaemon(t, s, "node-1")
	if !bytes.Equal(got.PublicKey, again.PublicKey) || got.TokenID != again.TokenID || got.Tenant != "tenant-a" {
		t.Errorf("node-1 after re-enrolment = %+v", got)
	}
	if got.Tags["site"] != "paris" {
		t.Errorf("re-enrolment lost the server-managed tags: %v", got.Tags)
	}
	// The re-enrolment was made with the same token id, so nothing to blacklist; a token of
	// another id still valid is.
	third := testDaemon(t, "node-1", "tenant-a")
	third.TokenID = "tok-third"
	enroll(t, s, "jti-7", third)
	if !blacklisted(t, s, again.TokenID) {
		t.Error("re-enrolment left the previous token usable")
	}
	if _, err := s.Daemon("node-5"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused enrolments stored a row: %v", err)
	}
}

func TestEnrollConcurrentSameJTI(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	const n = 8
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		d := testDaemon(t, fmt.Sprintf("node-%d", i), "tenant")
		done.Go(func() {
			start.Wait()
			errs[i] = s.Enroll("the-jti", time.Now().Add(time.Minute), d)
		})
	}
	start.Done()
	done.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrReplayed):
			t.Errorf("enrolment %d: %v, want ErrReplayed", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d enrolments redeemed the same jti, want 1", won)
	}
	if ds, err := s.Daemons(); err != nil || len(ds) != 1 {
		t.Errorf("Daemons = %d rows, %v; want 1", len(ds), err)
	}
}

func TestDaemonsAndUpdate(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	if ds, err := s.Daemons(); err != nil || len(ds) != 0 {
		t.Fatalf("Daemons on an empty store = %v, %v", ds, err)
	}
	for i, id := range []string{"c", "a", "b"} {
		enroll(t, s, fmt.Sprint("jti-", i), testDaemon(t, id, "t"))
	}
	ds, err := s.Daemons()
	if err != nil || len(ds) != 3 || ds[0].NodeID != "a" || ds[1].NodeID != "b" || ds[2].NodeID != "c" {
		t.Fatalf("Daemons = %+v, %v; want a, b, c", ds, err)
	}
	if _, err := s.Daemon("missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Daemon(missing) = %v", err)
	}

	abort := errors.New("abort")
	caps := []byte{9, 9, 9}
	cases := []struct {
		name string
		id   string
		fn   func(*Daemon) error
		want error
	}{
		{"missing row", "missing", func(*Daemon) error { return nil }, ErrNotFound},
		{"fn aborts", "a", func(d *Daemon) error { d.Label = "changed"; return abort }, abort},
		{"fn renames", "a", func(d *Daemon) error { d.NodeID = "z"; return nil }, ErrInvalid},
		{"fn breaks the key", "a", func(d *Daemon) error { d.PublicKey = nil; return nil }, ErrInvalid},
		{"tags and capabilities", "a", func(d *Daemon) error {
			d.Tags = map[string]string{"env": "prod"}
			d.Capabilities = caps
			return nil
		}, nil},
	}
	for _, c := range cases {
		err := s.UpdateDaemon(c.id, c.fn)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: UpdateDaemon = %v, want %v", c.name, err, c.want)
		}
	}
	a := mustDaemon(t, s, "a")
	if a.Label != "label-a" || a.Tags["env"] != "prod" || !bytes.Equal(a.Capabilities, caps) {
		t.Errorf("a after updates = %+v", a)
	}
	if _, err := s.Daemon("z"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a renaming update stored a row: %v", err)
	}
}

func TestChallenges(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	now := time.Now()
	ch := func(id string, exp time.Time) Challenge {
		return Challenge{ID: id, NodeID: "node-" + id, Role: "edge", PublicKey: edgeKey(t),
			Nonce: bytes.Repeat([]byte{7}, 32), Capabilities: []byte{1}, SourceIP: "127.0.0.1", Expires: exp}
	}
	in := ch("c1", now.Add(300*time.Second))
	puts := []struct {
		name string
		c    Challenge
		want error
	}{
		{"first", in, nil},
		{"second", ch("c2", now.Add(time.Minute)), nil},
		{"same id", ch("c1", now.Add(time.Minute)), ErrConflict},
		{"already expired", ch("c3", now.Add(-time.Second)), ErrInvalid},
		{"no expiry", ch("c3", time.Time{}), ErrInvalid},
		{"empty id", ch("", now.Add(time.Minute)), ErrInvalid},
		{"third", ch("c3", now.Add(time.Minute)), nil},
		{"fourth", ch("c4", now.Add(time.Minute)), nil},
	}
	for _, p := range puts {
		err := s.AdmitChallenge(p.c, nil)
		if p.want == nil && err != nil || p.want != nil && !errors.Is(err, p.want) {
			t.Errorf("%s: AdmitChallenge = %v, want %v", p.name, err, p.want)
		}
	}
	if n, err := s.PendingChallenges(now); err != nil || n != 4 {
		t.Errorf("PendingChallenges = %d, %v; want 4", n, err)
	}
	if n, err := s.PendingChallenges(now.Add(2 * time.Minute)); err != nil || n != 1 {
		t.Errorf("PendingChallenges in 2 minutes = %d, %v; want 1", n, err)
	}

	takes := []struct {
		name string
		id   string
		now  time.Time
		want error
	}{
		{"take", "c1", now, nil},
		{"take again (single use)", "c1", now, ErrNotFound},
		{"unknown", "nope", now, ErrNotFound},
		{"expired at now", "c2", now.Add(time.Minute), ErrNotFound},
		{"expired one is gone", "c2", now, ErrNotFound},
	}
	for _, tk := range takes {
		got, err := s.TakeChallenge(tk.id, tk.now)
		if tk.want == nil && err != nil || tk.want != nil && !errors.Is(err, tk.want) {
			t.Errorf("%s: TakeChallenge = %v, want %v", tk.name, err, tk.want)
		}
		if tk.want == nil && (got.ID != in.ID || got.NodeID != in.NodeID || got.Role != in.Role ||
			!bytes.Equal(got.PublicKey, in.PublicKey) || !bytes.Equal(got.Nonce, in.Nonce) ||
			!bytes.Equal(got.Capabilities, in.Capabilities) || got.SourceIP != in.SourceIP || !got.Expires.Equal(in.Expires)) {
			t.Errorf("%s: TakeChallenge = %+v, want %+v", tk.name, got, in)
		}
	}
	// A taken id can be admitted again.
	if err := s.AdmitChallenge(ch("c1", now.Add(time.Minute)), nil); err != nil {
		t.Errorf("AdmitChallenge of a taken id: %v", err)
	}
}

func TestChallengeExpiresByItself(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	exp := time.Now().Add(time.Second)
	if err := s.AdmitChallenge(Challenge{ID: "short", Expires: exp}, nil); err != nil {
		t.Fatal(err)
	}
	// A zero now counts every stored challenge: only Badger's TTL can make it go.
	if n, err := s.PendingChallenges(time.Time{}); err != nil || n != 1 {
		t.Fatalf("PendingChallenges = %d, %v; want 1", n, err)
	}
	time.Sleep(time.Until(exp.Truncate(time.Second).Add(2 * time.Second)))
	if n, err := s.PendingChallenges(time.Time{}); err != nil || n != 0 {
		t.Errorf("PendingChallenges after the TTL = %d, %v; want 0", n, err)
	}
	if _, err := s.TakeChallenge("short", time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("TakeChallenge after the TTL = %v, want ErrNotFound", err)
	}
}

// TestChallengeRecordBound: a challenge record over MaxChallengeRecordSize (the 4 MB
// capabilities of issue 12) is refused with ErrInvalid, by AdmitChallenge, and nothing is stored.
func TestChallengeRecordBound(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	exp := time.Now().Add(time.Minute)
	for _, tc := range []struct {
		name string
		caps int
		want error
	}{
		{"small", 4 << 10, nil},
		{"just over once encoded", MaxChallengeRecordSize * 3 / 4, ErrInvalid},
		{"over the bound", MaxChallengeRecordSize + 1, ErrInvalid},
		{"the 4 MB of the report", 4 << 20, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, put := range map[string]func(Challenge) error{
				"AdmitChallenge": func(c Challenge) error { return s.AdmitChallenge(c, nil) },
			} {
				c := Challenge{ID: name + "-" + tc.name, NodeID: "n", PublicKey: edgeKey(t), Nonce: make([]byte, 32),
					Capabilities: bytes.Repeat([]byte{'x'}, tc.caps), Expires: exp}
				err := put(c)
				if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
					t.Fatalf("%s = %v, want %v", name, err, tc.want)
				}
				if tc.want != nil && !strings.Contains(err.Error(), fmt.Sprintf("at most %d", MaxChallengeRecordSize)) {
					t.Errorf("%s: the error does not name the bound: %v", name, err)
				}
				_, err = s.TakeChallenge(c.ID, time.Now())
				if stored := err == nil; stored != (tc.want == nil) {
					t.Errorf("%s: stored = %v (take: %v)", name, stored, err)
				}
			}
		})
	}
}

// TestAdmitChallenge: AdmitChallenge stores a challenge and evicts others in one
// transaction, refuses bad records (evicting nothing then), and Challenges
// lists what is pending, oldest issued first, with every field.
func TestAdmitChallenge(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	now := time.Now()
	ch := func(id string, issued time.Duration) Challenge {
		return Challenge{ID: id, NodeID: "node-" + id, Role: "edge", PublicKey: edgeKey(t), Nonce: bytes.Repeat([]byte{7}, 32),
			Capabilities: []byte{1}, SourceIP: "127.0.0.1", Expires: now.Add(time.Minute), Issued: now.Add(issued),
			Pool: "anonymous", Network: "127.0.0.0/24", Quota: "q-" + id}
	}
	ids := func(cs []Challenge) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	steps := []struct {
		name  string
		c     Challenge
		evict []string
		want  error
		after []string // pending afterwards, oldest issued first
	}{
		{"first", ch("a", 0), nil, nil, []string{"a"}},
		{"older issue time", ch("b", -time.Second), nil, nil, []string{"b", "a"}},
		{"evicts one", ch("c", time.Second), []string{"b"}, nil, []string{"a", "c"}},
		{"evicts an unknown id", ch("d", 2*time.Second), []string{"gone"}, nil, []string{"a", "c", "d"}},
		{"evicts itself", ch("e", 3*time.Second), []string{"e"}, ErrInvalid, []string{"a", "c", "d"}},
		{"same id: nothing evicted", ch("a", 3*time.Second), []string{"c"}, ErrConflict, []string{"a", "c", "d"}},
		{"empty evicted id", ch("f", 3*time.Second), []string{""}, ErrInvalid, []string{"a", "c", "d"}},
		{"oversized: nothing evicted", func() Challenge { c := ch("g", 0); c.Capabilities = make([]byte, MaxChallengeRecordSize); return c }(),
			[]string{"a"}, ErrInvalid, []string{"a", "c", "d"}},
		{"expired: nothing evicted", func() Challenge { c := ch("h", 0); c.Expires = now.Add(-time.Second); return c }(),
			[]string{"a"}, ErrInvalid, []string{"a", "c", "d"}},
	}
	for _, st := range steps {
		err := s.AdmitChallenge(st.c, st.evict)
		if st.want == nil && err != nil || st.want != nil && !errors.Is(err, st.want) {
			t.Errorf("%s: AdmitChallenge = %v, want %v", st.name, err, st.want)
		}
		got, skipped, err := s.Challenges(time.Now())
		if err != nil || skipped != 0 || !slices.Equal(ids(got), st.after) {
			t.Errorf("%s: Challenges = %v, %d skipped, %v; want %v", st.name, ids(got), skipped, err, st.after)
		}
	}
	got, _, _ := s.Challenges(time.Now())
	if want := ch("a", 0); len(got) == 0 || got[0].ID != "a" || !got[0].Issued.Equal(want.Issued) || got[0].Pool != want.Pool ||
		got[0].Network != want.Network || got[0].Quota != want.Quota || got[0].SourceIP != want.SourceIP {
		t.Errorf("Challenges()[0] = %+v, want %+v", got, want)
	}
	if got, _, err := s.Challenges(now.Add(2 * time.Minute)); err != nil || len(got) != 0 {
		t.Errorf("Challenges after their expiry = %v, %v", ids(got), err)
	}
}

func TestChallengeConcurrency(t *testing.T) {
	s := openTest(t, t.TempDir(), func(o *Options) { o.SyncWrites = false })
	defer s.Close()
	const n = 16
	exp := time.Now().Add(time.Minute)
	var start, done sync.WaitGroup
	// Concurrent admissions of one id: exactly one stores it.
	start.Add(1)
	errs := make([]error, n)
	for i := range n {
		done.Go(func() {
			start.Wait()
			errs[i] = s.AdmitChallenge(Challenge{ID: "same", Expires: exp}, nil)
		})
	}
	start.Done()
	done.Wait()
	stored := 0
	for i, err := range errs {
		switch {
		case err == nil:
			stored++
		case !errors.Is(err, ErrConflict):
			t.Errorf("admit %d: %v", i, err)
		}
	}
	if stored != 1 {
		t.Errorf("one id admitted %d times at once, want once", stored)
	}

	// Concurrent takes of one challenge: exactly one gets it.
	if err := s.AdmitChallenge(Challenge{ID: "once", Expires: exp}, nil); err != nil {
		t.Fatal(err)
	}
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			_, errs[i] = s.TakeChallenge("once", time.Now())
		})
	}
	start.Done()
	done.Wait()
	taken := 0
	for i, err := range errs {
		switch {
		case err == nil:
			taken++
		case !errors.Is(err, ErrNotFound):
			t.Errorf("take %d: %v", i, err)
		}
	}
	if taken != 1 {
		t.Errorf("one challenge taken %d times", taken)
	}
}

func TestRotateKey(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	now := time.Now()
	d := testDaemon(t, "node", "t")
	enroll(t, s, "jti", d)
	rev := testDaemon(t, "revoked", "t")
	enroll(t, s, "jti-r", rev)
	if _, err := s.Revoke("revoked", now); err != nil {
		t.Fatal(err)
	}
	k1, k2, k3 := edgeKey(t), edgeKey(t), edgeKey(t)
	n1, n2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	overlap, keep, texp := now.Add(time.Minute), now.Add(10*time.Minute), now.Add(time.Hour)

	steps := []struct {
		name     string
		node     string
		old, new []byte
		nonce    []byte
		keep     time.Time
		token    string
		want     error
	}{
		{"unknown node", "missing", d.PublicKey, k1, n1, keep, "tok-2", ErrNotFound},
		{"revoked node", "revoked", rev.PublicKey, k1, n1, keep, "tok-2", ErrRevoked},
		{"stale old key", "node", k2, k1, n1, keep, "tok-2", ErrConflict},
		{"short new key", "node", d.PublicKey, k1[:16], n1, keep, "tok-2", ErrInvalid},
		{"same key", "node", d.PublicKey, d.PublicKey, n1, keep, "tok-2", ErrInvalid},
		{"no nonce", "node", d.PublicKey, k1, nil, keep, "tok-2", ErrInvalid},
		{"no nonce expiry", "node", d.PublicKey, k1, n1, time.Time{}, "tok-2", ErrInvalid},
		{"no token id", "node", d.PublicKey, k1, n1, keep, "", ErrInvalid},
		{"rotate", "node", d.PublicKey, k1, n1, keep, "tok-2", nil},
		{"same request replayed", "node", d.PublicKey, k1, n1, keep, "tok-2", ErrReplayed},
		{"nonce reused from the new key", "node", k1, k2, n1, keep, "tok-3", ErrReplayed},
		{"rotate again", "node", k1, k3, n2, keep, "tok-3", nil},
	}
	for _, st := range steps {
		err := s.RotateKey(st.node, st.old, st.new, overlap, st.nonce, st.keep, st.token, texp)
		if st.want == nil && err != nil || st.want != nil && !errors.Is(err, st.want) {
			t.Errorf("%s: RotateKey = %v, want %v", st.name, err, st.want)
		}
	}
	got := mustDaemon(t, s, "node")
	if !bytes.Equal(got.PublicKey, k3) || !bytes.Equal(got.PreviousKey, k1) || !got.PreviousUntil.Equal(overlap) ||
		got.TokenID != "tok-3" || !got.TokenExpiry.Equal(texp) {
		t.Errorf("after two rotations: %+v", got)
	}
	if !bytes.Equal(got.Capabilities, d.Capabilities) || got.Label != d.Label || !got.EnrolledAt.Equal(d.EnrolledAt) {
		t.Errorf("rotation changed other fields: %+v", got)
	}
	for tok, want := range map[string]bool{d.TokenID: true, "tok-2": true, "tok-3": false} {
		if blacklisted(t, s, tok) != want {
			t.Errorf("token %s blacklisted = %v, want %v", tok, !want, want)
		}
	}
}

// TestRotateKeyConcurrent races rotations from the same old key: exactly one wins each round,
// the others fail with ErrConflict (a Badger transaction conflict or, if they ran after the
// winner committed, a stale old key).
func TestRotateKeyConcurrent(t *testing.T) {
	s := openTest(t, t.TempDir(), func(o *Options) { o.SyncWrites = false })
	defer s.Close()
	d := testDaemon(t, "node", "t")
	enroll(t, s, "jti", d)
	const rounds, racers = 10, 6
	cur, txnConflicts := d.PublicKey, 0
	for r := range rounds {
		keys := make([][]byte, racers)
		errs := make([]error, racers)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range racers {
			keys[i] = edgeKey(t)
			nonce := randomBytes(t, 32)
			done.Go(func() {
				start.Wait()
				errs[i] = s.RotateKey("node", cur, keys[i], time.Now().Add(time.Minute), nonce,
					time.Now().Add(time.Hour), fmt.Sprintf("tok-%d-%d", r, i), time.Now().Add(time.Hour))
			})
		}
		start.Done()
		done.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: racers %d and %d both rotated", r, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, ErrConflict):
				t.Fatalf("round %d: racer %d: %v, want ErrConflict", r, i, err)
			case errors.Is(err, badger.ErrConflict):
				txnConflicts++
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no rotation won", r)
		}
		got := mustDaemon(t, s, "node")
		if !bytes.Equal(got.PublicKey, keys[winner]) || !bytes.Equal(got.PreviousKey, cur) {
			t.Fatalf("round %d: the row does not hold the winner's rotation", r)
		}
		cur = keys[winner]
	}
	t.Logf("%d of %d losing rotations were Badger transaction conflicts", txnConflicts, rounds*(racers-1))
}

func TestRevoke(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	d := testDaemon(t, "node", "t")
	enroll(t, s, "jti", d)
	if _, err := s.Revoke("missing", time.Now()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Revoke(missing) = %v", err)
	}
	at := time.Unix(1_700_000_000, 0)
	got, err := s.Revoke("node", at)
	if err != nil || !got.Revoked || !got.RevokedAt.Equal(at) {
		t.Fatalf("Revoke = %+v, %v", got, err)
	}
	if !blacklisted(t, s, d.TokenID) {
		t.Error("the revoked daemon's token is not blacklisted")
	}
	again, err := s.Revoke("node", at.Add(time.Hour))
	if err != nil || !again.RevokedAt.Equal(at) {
		t.Errorf("second Revoke = %+v, %v; want the first revocation kept", again, err)
	}
	if err := s.RotateKey("node", d.PublicKey, edgeKey(t), time.Now(), []byte{1}, time.Now().Add(time.Hour), "tok-2", time.Now().Add(time.Hour)); !errors.Is(err, ErrRevoked) {
		t.Errorf("RotateKey after Revoke = %v, want ErrRevoked", err)
	}
	if err := s.Enroll("jti-2", time.Now().Add(time.Hour), testDaemon(t, "node", "t")); !errors.Is(err, ErrRevoked) {
		t.Errorf("Enroll after Revoke = %v, want ErrRevoked", err)
	}
	if d := mustDaemon(t, s, "node"); !d.Revoked {
		t.Error("the stored row is not revoked")
	}
}

func TestBlacklist(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	cases := []struct {
		name  string
		id    string
		until time.Time
		want  error
		black bool
	}{
		{"valid token", "t1", time.Now().Add(time.Hour), nil, true},
		{"expired long ago: nothing to keep", "t2", time.Now().Add(-time.Hour), nil, false},
		{"no expiry", "t3", time.Time{}, ErrInvalid, false},
		{"empty id", "", time.Now().Add(time.Hour), ErrInvalid, false},
	}
	for _, c := range cases {
		err := s.Blacklist(c.id, c.until)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: Blacklist = %v, want %v", c.name, err, c.want)
		}
		if c.id != "" && blacklisted(t, s, c.id) != c.black {
			t.Errorf("%s: blacklisted = %v, want %v", c.name, !c.black, c.black)
		}
	}
	if blacklisted(t, s, "never") {
		t.Error("an unknown token is blacklisted")
	}
}

// TestEdgeTTLs checks the markers carry Badger TTLs: the expiry asked for plus the margin,
// rounded up to the second; the daemon row has none.
func TestEdgeTTLs(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	now := time.Now()
	jtiExp, tokExp, nonceExp, chExp := now.Add(15*time.Minute), now.Add(time.Hour), now.Add(20*time.Minute), now.Add(300*time.Second)
	d := testDaemon(t, "node", "t")
	d.TokenExpiry = tokExp
	if err := s.Enroll("jti", jtiExp, d); err != nil {
		t.Fatal(err)
	}
	nonce := []byte{0xab, 0xcd}
	if err := s.RotateKey("node", d.PublicKey, edgeKey(t), now.Add(time.Minute), nonce, nonceExp, "tok-2", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.AdmitChallenge(Challenge{ID: "ch", Expires: chExp}, nil); err != nil {
		t.Fatal(err)
	}
	ceil := func(t time.Time) uint64 { return uint64((t.UnixNano() + 1e9 - 1) / 1e9) }
	want := map[string]uint64{
		prefixJTI + "jti":            ceil(jtiExp.Add(expiryMargin)),
		prefixBlacklist + "tok-node": ceil(tokExp.Add(expiryMargin)),
		prefixNonce + "abcd":         ceil(nonceExp.Add(expiryMargin)),
		prefixChallenge + "ch":       ceil(chExp),
		prefixDaemon + "node":        0,
	}
	err := s.db.View(func(txn *badger.Txn) error {
		for k, exp := range want {
			item, err := txn.Get([]byte(k))
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			if item.ExpiresAt() != exp {
				t.Errorf("%s expires at %d, want %d", k, item.ExpiresAt(), exp)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFlushLastSeen(t *testing.T) {
	// A small memtable makes Badger's transaction size limit small: 300 rows of about 3 KiB
	// (under the value threshold, so counted whole) need several transactions.
	s := openTest(t, t.TempDir(), func(o *Options) { o.SyncWrites = false; o.MemTableSize = 1 << 20 })
	defer s.Close()
	const n = 300
	base := time.Unix(1_700_000_000, 0)
	seen := map[string]time.Time{"unknown": base}
	for i := range n {
		d := testDaemon(t, fmt.Sprintf("node-%03d", i), "t")
		d.Capabilities = bytes.Repeat([]byte{byte(i)}, 2<<10)
		d.LastSeen = base.Add(time.Minute)
		enroll(t, s, fmt.Sprint("jti-", i), d)
		if i%2 == 0 {
			seen[d.NodeID] = base.Add(time.Duration(i+2) * time.Minute) // newer
		} else {
			seen[d.NodeID] = base // older than the stored one: ignored
		}
	}
	if err := s.FlushLastSeen(seen); err != nil {
		t.Fatalf("FlushLastSeen: %v", err)
	}
	ds, err := s.Daemons()
	if err != nil || len(ds) != n {
		t.Fatalf("Daemons = %d, %v", len(ds), err)
	}
	for i, d := range ds {
		want := base.Add(time.Minute)
		if i%2 == 0 {
			want = base.Add(time.Duration(i+2) * time.Minute)
		}
		if !d.LastSeen.Equal(want) {
			t.Errorf("%s last seen %s, want %s", d.NodeID, d.LastSeen, want)
		}
	}
	if _, err := s.Daemon("unknown"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FlushLastSeen created a row for an unknown node: %v", err)
	}
	if err := s.FlushLastSeen(nil); err != nil {
		t.Errorf("FlushLastSeen(nil) = %v", err)
	}
}

// seedEdge writes some of every kind of edge state and returns the daemon rows written.
func seedEdge(t *testing.T, s *Store) []Daemon {
	t.Helper()
	now := time.Now()
	a, b := testDaemon(t, "a", "t"), testDaemon(t, "b", "t")
	a.Tags = map[string]string{"k": "v"}
	enroll(t, s, "jti-a", a)
	enroll(t, s, "jti-b", b)
	newKey := edgeKey(t)
	if err := s.RotateKey("a", a.PublicKey, newKey, now.Add(time.Minute), []byte("nonce-a"), now.Add(time.Hour), "tok-a2", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Blacklist("manual", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke("b", now); err != nil {
		t.Fatal(err)
	}
	if err := s.AdmitChallenge(Challenge{ID: "pending", NodeID: "c", Expires: now.Add(time.Minute)}, nil); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Daemons()
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// checkEdge verifies the state seedEdge wrote is all there.
func checkEdge(t *testing.T, s *Store, want []Daemon) {
	t.Helper()
	got, err := s.Daemons()
	if err != nil || len(got) != len(want) {
		t.Fatalf("Daemons = %d rows, %v; want %d", len(got), err, len(want))
	}
	for i := range want {
		if !sameDaemon(got[i], want[i]) {
			t.Errorf("daemon %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, tok := range []string{"tok-a", "tok-b", "manual"} {
		if !blacklisted(t, s, tok) {
			t.Errorf("token %s is no longer blacklisted", tok)
		}
	}
	if err := s.Enroll("jti-a", time.Now().Add(time.Hour), testDaemon(t, "z", "t")); !errors.Is(err, ErrReplayed) {
		t.Errorf("redeemed jti accepted again: %v", err)
	}
	a := got[0]
	if err := s.RotateKey("a", a.PublicKey, edgeKey(t), time.Now(), []byte("nonce-a"), time.Now().Add(time.Hour), "x", time.Now().Add(time.Hour)); !errors.Is(err, ErrReplayed) {
		t.Errorf("seen nonce accepted again: %v", err)
	}
	if n, err := s.PendingChallenges(time.Now()); err != nil || n != 1 {
		t.Errorf("PendingChallenges = %d, %v; want 1", n, err)
	}
}

func TestEdgeStateSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	want := seedEdge(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	defer s.Close()
	checkEdge(t, s, want)
}

func TestEdgeStateSurvivesBackupRestore(t *testing.T) {
	src := openTest(t, t.TempDir())
	want := seedEdge(t, src)
	var backup bytes.Buffer
	if err := src.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	src.Close()
	dst := openTest(t, t.TempDir())
	defer dst.Close()
	if err := dst.Restore(bytes.NewReader(backup.Bytes()), false); err != nil {
		t.Fatal(err)
	}
	checkEdge(t, dst, want)
}

// TestEdgeStateUntouchedByCleanup runs the orphan sweep, file expiry and garbage collection
// over a store holding edge state: none of them may touch the e/ namespace.
func TestEdgeStateUntouchedByCleanup(t *testing.T) {
	s := openTest(t, t.TempDir(), gcOptions)
	defer s.Close()
	want := seedEdge(t, s)
	for i := range 4 {
		putFile(t, s, FileKey{"t", "s", fmt.Sprint("f", i)}, randomBytes(t, 300<<10), time.Now().Add(time.Second))
	}
	if _, err := s.ExpireFiles(time.Now().Add(time.Hour), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SweepOrphans(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CollectGarbage(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkEdge(t, s, want)
}

func TestDecodeDaemonBadInput(t *testing.T) {
	good, err := encodeDaemon(testDaemon(t, "n", "t"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeDaemon(good); err != nil {
		t.Fatalf("decode of a good record: %v", err)
	}
	key := `"public_key":"` + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" + `"`
	cases := map[string]string{
		"empty":            ``,
		"null":             `null`,
		"not json":         `{"v":1,`,
		"array":            `[1]`,
		"no version":       `{"node_id":"n","tenant":"t",` + key + `}`,
		"version 2":        `{"v":2,"node_id":"n","tenant":"t",` + key + `}`,
		"no node id":       `{"v":1,"tenant":"t",` + key + `}`,
		"no tenant":        `{"v":1,"node_id":"n",` + key + `}`,
		"no key":           `{"v":1,"node_id":"n","tenant":"t"}`,
		"short key":        `{"v":1,"node_id":"n","tenant":"t","public_key":"AAAA"}`,
		"bad base64":       `{"v":1,"node_id":"n","tenant":"t","public_key":"!!"}`,
		"short prev key":   `{"v":1,"node_id":"n","tenant":"t",` + key + `,"previous_key":"AAAA"}`,
		"string time":      `{"v":1,"node_id":"n","tenant":"t",` + key + `,"last_seen":"yesterday"}`,
		"tags not strings": `{"v":1,"node_id":"n","tenant":"t",` + key + `,"tags":{"a":1}}`,
	}
	for name, in := range cases {
		if _, err := decodeDaemon([]byte(in)); err == nil {
			t.Errorf("%s: decodeDaemon(%q) succeeded", name, in)
		}
	}
	// A corrupt row is reported, named, and hides nothing else from Daemon.
	s := openTest(t, t.TempDir())
	defer s.Close()
	enroll(t, s, "jti", testDaemon(t, "ok", "t"))
	if err := s.update(func(txn *badger.Txn) error { return txn.Set(daemonKey("bad"), []byte(`{"v":7}`)) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Daemon("bad"); err == nil {
		t.Error("Daemon of a corrupt row succeeded")
	}
	if _, err := s.Daemons(); err == nil {
		t.Error("Daemons over a corrupt row succeeded")
	}
	mustDaemon(t, s, "ok")
}

func TestDecodeChallengeBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"empty": ``, "null": `null`, "not json": `{`, "version 2": `{"v":2,"id":"c","expires":1}`,
		"no id": `{"v":1,"expires":1}`, "no expiry": `{"v":1,"id":"c"}`, "bad nonce": `{"v":1,"id":"c","expires":1,"nonce":"!"}`,
	} {
		if _, err := decodeChallenge([]byte(in)); err == nil {
			t.Errorf("%s: decodeChallenge(%q) succeeded", name, in)
		}
	}
}

func FuzzDecodeDaemon(f *testing.F) {
	d := testDaemon(f, "node", "tenant")
	d.Tags = map[string]string{"a": "b"}
	d.PreviousKey, d.PreviousUntil, d.Revoked, d.RevokedAt, d.LastSeen = edgeKey(f), time.Now(), true, time.Now(), time.Now()
	good, err := encodeDaemon(d)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":2,"node_id":"n"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDaemon(b)
		if err != nil {
			return
		}
		// What decodes re-encodes, and the encoding is stable from then on.
		enc, err := encodeDaemon(d)
		if err != nil {
			if len(b) <= MaxDaemonRecordSize {
				t.Fatalf("decoded %q but cannot encode it: %v", b, err)
			}
			return
		}
		d2, err := decodeDaemon(enc)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v\n%s", err, enc)
		}
		enc2, err := encodeDaemon(d2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %v\n%s\n%s", err, enc, enc2)
		}
	})
}

func FuzzDecodeChallenge(f *testing.F) {
	good, err := encodeChallenge(Challenge{ID: "c", NodeID: "n", Role: "edge", PublicKey: make([]byte, 32),
		Nonce: make([]byte, 32), SourceIP: "127.0.0.1", Expires: time.Now(), Issued: time.Now(),
		Pool: "anonymous", Network: "127.0.0.0/24", Quota: "q"}, time.Time{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"v":1,"id":"c"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeChallenge(b)
		if err != nil {
			return
		}
		enc, err := encodeChallenge(c, time.Time{})
		if err != nil {
			// Decoding is lenient (records written before the size bound still decode);
			// encoding refuses what is over a bound (the id's, the record's) as ErrInvalid.
			if errors.Is(err, ErrInvalid) {
				return
			}
			t.Fatalf("decoded %q but cannot encode it: %v", b, err)
		}
		var r challengeRecord
		if err := json.Unmarshal(enc, &r); err != nil || r.ID != c.ID || r.Expires != c.Expires.UnixNano() {
			t.Fatalf("re-encoded challenge differs: %v\n%s", err, enc)
		}
	})
}

// TestSigningKeyCopy: the copy of the signing key is kept, travels with a backup, counts as
// data (a restore without replace refuses a store holding one), and refuses absurd sizes.
func TestSigningKeyCopy(t *testing.T) {
	s := openTest(t, t.TempDir())
	if _, err := s.SigningKey(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SigningKey of a new store: %v, want ErrNotFound", err)
	}
	key := []byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n")
	for range 2 {
		if err := s.SetSigningKey(key); err != nil {
			t.Fatal(err)
		}
	}
	for name, bad := range map[string][]byte{"empty": nil, "oversize": make([]byte, maxSigningKey+1)} {
		if err := s.SetSigningKey(bad); err == nil {
			t.Errorf("SetSigningKey of %s succeeded", name)
		}
	}
	if got, err := s.SigningKey(); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("SigningKey: %q, %v", got, err)
	}
	var backup bytes.Buffer
	if err := s.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	s.Close()
	dst := openTest(t, t.TempDir())
	defer dst.Close()
	if err := dst.Restore(bytes.NewReader(backup.Bytes()), false); err != nil {
		t.Fatal(err)
	}
	if got, err := dst.SigningKey(); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("SigningKey after restore: %q, %v", got, err)
	}
	if err := dst.Restore(bytes.NewReader(backup.Bytes()), false); err == nil || !strings.Contains(err.Error(), "already holds data") {
		t.Errorf("restore into a store holding a key copy, without replace: %v", err)
	}
}
