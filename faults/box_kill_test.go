package faults

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// boxName is one upload name and every content sent under it.
type boxName struct {
	kind, name string
	sums       []string // sha256 of each content sent, in order (one per round at most)
	floor      int      // newest acknowledged content, -1 if none
}

// TestBoxKill9DuringUploads: agents' uploads (4 KiB to 256 KiB, sent in paced pieces, some
// replacing an earlier upload of the same name) are in flight when the relay is killed with
// SIGKILL, five times; its upstream is down throughout. Once the upstream comes up, every
// name that was acknowledged arrives once, holding its acknowledged content or a later one
// (never an older one), and whatever arrives is whole: one of the contents sent under its
// name.
func TestBoxKill9DuringUploads(t *testing.T) {
	needBinary(t)
	const rounds, perRound, pool = 5, 30, 60
	dir := t.TempDir()
	node := nodeUUID()
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, nodeMapOf(map[string]string{"relay1": "root", node: "relay1"}))
	writeHtpasswd(t, dir, "htpasswd-webdav-initial", initialUser+":"+initialAPR1)
	writeHtpasswd(t, dir, "htpasswd-webdav", shaUser+":"+shaHash(shaPass))
	up := newRecorder(t, "")
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := boxSettings(baseSettings("relay1", filepath.Join(dir, "data"), nodes, api, admin), dir)
	s["role"] = "relay"
	s["upstream"] = fmt.Sprintf("%q", up.URL())
	cfg := writeConfig(t, dir, "relay.yaml", s)
	p := startRelay(t, "relay", cfg, api, admin)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	names := make([]*boxName, pool)
	at := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	for i := range names {
		switch i % 3 {
		case 0:
			gz, _ := inventoryNames(at.Add(time.Duration(i)*time.Minute), node)
			names[i] = &boxName{kind: "inventories", name: gz, floor: -1}
		case 1:
			_, sign := inventoryNames(at.Add(time.Duration(i)*time.Minute), node)
			names[i] = &boxName{kind: "inventory-updates", name: sign, floor: -1}
		default:
			names[i] = &boxName{kind: "reports", name: reportName(at.Add(time.Duration(i)*time.Minute), node), floor: -1}
		}
	}
	bodies := map[string][]byte{} // by sha256: what arrives must be one of them
	c := newClient(time.Minute)
	var seed uint64
	acked := 0
	for range rounds {
		type put struct {
			n     *boxName
			v     int
			body  []byte
			start time.Duration
		}
		var puts []put
		for _, i := range rng.Perm(pool)[:perRound] {
			seed++
			b := content(seed, logUniform(rng, 4<<10, 256<<10))
			n := names[i]
			n.sums = append(n.sums, sha256Hex(b))
			bodies[sha256Hex(b)] = b
			puts = append(puts, put{n, len(n.sums) - 1, b, time.Duration(rng.IntN(100)) * time.Millisecond})
		}
		killAfter := rng.IntN(perRound / 2)
		acks := make(chan int, perRound)
		var wg sync.WaitGroup
		for _, u := range puts {
			wg.Go(func() {
				time.Sleep(u.start)
				user, pass := shaUser, shaPass
				if u.n.kind == "inventories" {
					user, pass = initialUser, initialPass
				}
				code, _, err := pacedAgentPut(c, p.api+"/"+u.n.kind+"/"+u.n.name, user, pass, u.body, 16<<10, 3*time.Millisecond)
				if err == nil && (code == http.StatusCreated || code == http.StatusNoContent) {
					acks <- u.v
					if u.v > u.n.floor {
						u.n.floor = u.v // one PUT per name and round: no race on floor
					}
				} else if err == nil {
					t.Errorf("PUT /%s/%s: %d, want 201 or 204", u.n.kind, u.n.name, code)
				}
			})
		}
		for range killAfter {
			select {
			case <-acks:
			case <-time.After(10 * time.Second):
			}
		}
		p.kill9(t)
		wg.Wait()
		close(acks)
		acked += killAfter + len(acks)
		p = startRelay(t, "relay", cfg, api, admin)
	}
	t.Logf("%d uploads acknowledged over %d kills", acked, rounds)

	up.up(t)
	var want []*boxName
	for _, n := range names {
		if n.floor >= 0 {
			want = append(want, n)
		}
	}
	arrived := func() map[string][]received {
		m := map[string][]received{}
		for _, r := range up.got() {
			m[r.Kind+"/"+r.Name] = append(m[r.Kind+"/"+r.Name], r)
		}
		return m
	}
	relaytest.Eventually(t, 60*time.Second, fmt.Sprintf("the %d acknowledged names delivered", len(want)), func() bool {
		m := arrived()
		for _, n := range want {
			if len(m[n.kind+"/"+n.name]) == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(time.Second) // room for a duplicate to show
	m := arrived()
	for _, n := range names {
		got := m[n.kind+"/"+n.name]
		if len(got) > 1 {
			t.Errorf("/%s/%s delivered %d times, want once", n.kind, n.name, len(got))
		}
		for _, r := range got {
			v := -1
			for i, sum := range n.sums {
				if sum == r.Sum {
					v = i
				}
			}
			switch {
			case v < 0:
				t.Errorf("/%s/%s arrived with %d bytes that were never sent under its name (torn?)", n.kind, n.name, r.Size)
			case v < n.floor:
				t.Errorf("/%s/%s arrived with content %d of %d, older than the acknowledged %d", n.kind, n.name, v, len(n.sums), n.floor)
			case r.Size != len(bodies[r.Sum]):
				t.Errorf("/%s/%s: %d bytes, want %d", n.kind, n.name, r.Size, len(bodies[r.Sum]))
			}
		}
	}
}
