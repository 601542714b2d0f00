package faults

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// syncWrites is storage.sync_writes for TestKill9DuringUploads: -sync-writes=false shows
// what the test can and cannot detect.
var syncWrites = flag.Bool("sync-writes", true, "storage.sync_writes of the relay in TestKill9DuringUploads")

// version is one content sent for a file id.
type version struct {
	seed uint64
	size int
	hash string
}

// fileHistory is everything sent for one file id, and what the checks found.
type fileHistory struct {
	id       string
	versions []version // in the order they were sent; one per round at most
	floor    int       // newest acknowledged version, -1 if none: the file must hold it or a later one
	found    int       // version found at the last check, -1 if absent: the file never goes back
}

// index returns the index of the version with hash h, or -1.
func (f *fileHistory) index(h string) int {
	for i := len(f.versions) - 1; i >= 0; i-- {
		if f.versions[i].hash == h {
			return i
		}
	}
	return -1
}

// upload is one PUT of a round.
type upload struct {
	file  *fileHistory
	v     int // index in file.versions
	body  []byte
	start time.Duration // delay before the PUT starts
	pace  time.Duration // pause between two pieces of the body
	acked atomic.Bool
}

// TestKill9DuringUploads: 20 rounds on one data directory. Each round sends 100 signed uploads
// (1 KiB to 2 MiB, in pieces, over a pool of 150 file ids so files are also replaced), kills
// the relay with SIGKILL after a random number of them were acknowledged, and restarts it.
// Then every acknowledged upload is there (HEAD with its hash), every file present is read
// whole and holds one of the contents sent for it (the acknowledged one or a later one, never
// an older one, never a torn one), and files_stored counts the files found.
func TestKill9DuringUploads(t *testing.T) {
	needBinary(t)
	const rounds, perRound, pool = 20, 100, 150
	began := time.Now()
	dir := t.TempDir()
	rootN := relaytest.NewNode("root", "root", 0)
	src := relaytest.NewNode("src", "root", 1)
	tgt := relaytest.NewNode("tgt", "root", 2)
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(rootN, src, tgt))
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := baseSettings("root", filepath.Join(dir, "data"), nodes, api, admin)
	s["storage.sync_writes"] = strconv.FormatBool(*syncWrites)
	s["http.max_uploads_per_client"] = "64" // the 100 uploads of a round come from one address: up to 64 at once, as before shares
	cfg := writeConfig(t, dir, "relay.yaml", s)
	p := startRelay(t, "relay", cfg, api, admin)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	files := make([]*fileHistory, pool)
	for i := range files {
		files[i] = &fileHistory{id: fmt.Sprintf("file%03d", i), floor: -1, found: -1}
	}
	client := newClient(2 * time.Minute)
	var seed uint64
	totalAcked, totalCut, lateCommits := 0, 0, 0
	for round := range rounds {
		roundStart := time.Now()
		ups := make([]*upload, 0, perRound)
		for _, i := range rng.Perm(pool)[:perRound] {
			f := files[i]
			seed++
			v := version{seed: seed, size: logUniform(rng, 1<<10, 2<<20)}
			c := content(v.seed, v.size)
			v.hash = sha256Hex(c)
			f.versions = append(f.versions, v)
			ups = append(ups, &upload{
				file: f, v: len(f.versions) - 1, body: relaytest.SignedBody(t, src, c, "1d"),
				start: time.Duration(rng.IntN(200)) * time.Millisecond,
				pace:  time.Duration(1+rng.IntN(4)) * time.Millisecond,
			})
		}

		// Kill after killAfter acknowledgements (0: at a random moment of the first 300ms).
		killAfter := rng.IntN(perRound * 9 / 10)
		acks := make(chan struct{}, perRound)
		sent := time.Now()
		var wg sync.WaitGroup
		for _, u := range ups {
			wg.Go(func() {
				time.Sleep(u.start)
				if relaytest.PacedPut(client, filesURL(p.api, tgt.ID, src.ID, u.file.id), u.body, 16<<10, u.pace) == http.StatusOK {
					u.acked.Store(true)
					acks <- struct{}{}
				}
			})
		}
		if killAfter == 0 {
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		}
		for n := 0; n < killAfter; n++ {
			select {
			case <-acks:
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: only %d uploads acknowledged after 30s", round, n)
			}
		}
		time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		p.kill9(t)
		killedAt := time.Since(sent)
		wg.Wait()
		acked := 0
		for _, u := range ups {
			u.body = nil
			if u.acked.Load() {
				acked++
				u.file.floor = u.v
			}
		}
		totalAcked += acked
		totalCut += perRound - acked

		p = startRelay(t, fmt.Sprintf("relay (restart %d)", round+1), cfg, api, admin)
		present, late := checkUploads(t, p.api, src, tgt, files, ups)
		lateCommits += late
		if t.Failed() {
			t.FailNow()
		}
		if st := status(t, p.api); st.Files != int64(present) {
			t.Fatalf("round %d: files_stored %d, but %d files are found", round, st.Files, present)
		}
		t.Logf("round %2d: killed after %d of %d acknowledged (%s in); %d of %d file ids present, %d stored but unacknowledged; round took %s",
			round, acked, perRound, killedAt.Round(time.Millisecond), present, pool, late, time.Since(roundStart).Round(time.Millisecond))
	}
	p.stop(t)
	t.Logf("%d rounds: %d uploads acknowledged, %d cut by the kill (%d of them stored all the same); %s",
		rounds, totalAcked, totalCut, lateCommits, time.Since(began).Round(time.Millisecond))
}

// checkUploads checks every file id after a restart (see TestKill9DuringUploads) and returns
// how many are present and how many of this round's unacknowledged uploads were stored.
func checkUploads(t *testing.T, base string, src, tgt *relaytest.Node, files []*fileHistory, ups []*upload) (present, late int) {
	t.Helper()
	client := newClient(time.Minute)
	// Every acknowledged upload of the round answers HEAD with its hash.
	for _, u := range ups {
		if !u.acked.Load() {
			continue
		}
		code, err := headHash(client, base, tgt.ID, src.ID, u.file.id, u.file.versions[u.v].hash)
		if err != nil || code != http.StatusOK {
			t.Errorf("acknowledged %s (version %d) lost: HEAD with its hash: %d %v", u.file.id, u.v, code, err)
		}
	}
	// Every file id is read whole.
	var mu sync.Mutex
	jobs := make(chan *fileHistory)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for f := range jobs {
				found := checkFile(t, client, base, src, tgt, f)
				mu.Lock()
				if found >= 0 {
					present++
				}
				f.found = found
				mu.Unlock()
			}
		})
	}
	for _, f := range files {
		if len(f.versions) > 0 {
			jobs <- f
		}
	}
	close(jobs)
	wg.Wait()
	for _, u := range ups {
		if !u.acked.Load() && u.file.found == u.v {
			late++
		}
	}
	return present, late
}

// checkFile downloads one file id and returns the index of the version it holds (-1: absent).
// It reports with t.Errorf (it runs in several goroutines).
func checkFile(t *testing.T, client *http.Client, base string, src, tgt *relaytest.Node, f *fileHistory) int {
	code, body, etag, err := getSigned(client, base, tgt, src.ID, f.id)
	switch {
	case err != nil && code == http.StatusOK:
		t.Errorf("%s: torn: GET 200 but the body breaks after %d bytes: %v", f.id, len(body), err)
		return -1
	case err != nil:
		t.Errorf("%s: GET: %v", f.id, err)
		return -1
	case code == http.StatusNotFound:
		if f.floor >= 0 || f.found >= 0 {
			t.Errorf("%s: lost: GET 404, but version %d was acknowledged and version %d found before", f.id, f.floor, f.found)
		}
		return -1
	case code != http.StatusOK:
		t.Errorf("%s: GET %d %s", f.id, code, bytes.TrimSpace(body))
		return -1
	}
	h := sha256Hex(body)
	i := f.index(h)
	switch {
	case i < 0:
		t.Errorf("%s: torn: %d bytes with sha256 %s, none of the %d contents sent for it", f.id, len(body), h, len(f.versions))
	case etag != `"`+h+`"`:
		t.Errorf("%s: ETag %s, but the content's sha256 is %s", f.id, etag, h)
	case i < f.floor:
		t.Errorf("%s: holds version %d, older than the acknowledged version %d", f.id, i, f.floor)
	case i < f.found:
		t.Errorf("%s: holds version %d, older than version %d found before", f.id, i, f.found)
	case !bytes.Equal(body, content(f.versions[i].seed, f.versions[i].size)):
		t.Errorf("%s: content differs from version %d with the same hash", f.id, i) // cannot happen
	}
	return i
}
