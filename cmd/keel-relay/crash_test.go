package main

import (
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// crashUpload is one upload of the crash test.
type crashUpload struct {
	id      string
	content []byte
	hash    string        // sha256 of content, kept when content is dropped
	body    []byte        // signature block and content, as sent
	pace    time.Duration // pause between two pieces of the body
	start   time.Duration // delay before the upload starts
	acked   bool          // the relay answered 200
	present bool          // found whole after the restart
}

// TestCrashDuringUploads kills the relay with SIGKILL while uploads are in flight, three
// times at different moments: after the restart every acknowledged file is there whole, and
// every other one is either absent or whole — never torn.
func TestCrashDuringUploads(t *testing.T) {
	const uploads = 20
	dir := t.TempDir()
	rootN := relaytest.NewNode("root", "root", 0)
	src := relaytest.NewNode("src", "root", 1)
	tgt := relaytest.NewNode("tgt", "root", 2)
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(rootN, src, tgt))
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	cfg := writeConfig(t, dir, "relay.yaml", relayConf{
		NodeID: "root", DataDir: filepath.Join(dir, "data"), Nodes: nodes, Listen: api, Admin: admin,
	})
	p := startRelay(t, "relay", cfg, api, admin)
	client := newClient(time.Minute)

	var all []*crashUpload
	// Each round kills the relay once both killAfter uploads are acknowledged and killAt
	// has passed since the round began.
	rounds := []struct {
		killAfter int
		killAt    time.Duration
	}{{1, 300 * time.Millisecond}, {4, 700 * time.Millisecond}, {10, 1100 * time.Millisecond}}
	for round, r := range rounds {
		ups := make([]*crashUpload, uploads)
		for i := range ups {
			content := randomBytes(t, 1<<20+mrand.IntN(3<<20+1))
			ups[i] = &crashUpload{
				id:      fmt.Sprintf("round%d-file%02d", round, i),
				content: content,
				hash:    sha256Hex(content),
				body:    relaytest.SignedBody(t, src, content, "1d"),
				pace:    time.Duration(3+mrand.IntN(10)) * time.Millisecond,
				start:   time.Duration(mrand.IntN(400)) * time.Millisecond,
			}
		}
		began := time.Now()
		var acks atomic.Int32
		ackCh := make(chan struct{}, uploads)
		var wg sync.WaitGroup
		for _, u := range ups {
			wg.Go(func() {
				time.Sleep(u.start)
				if relaytest.PacedPut(client, filesURL(p.api, tgt.ID, src.ID, u.id), u.body, 32<<10, u.pace) == http.StatusOK {
					u.acked = true
					acks.Add(1)
					ackCh <- struct{}{}
				}
			})
		}
		for range r.killAfter {
			select {
			case <-ackCh:
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: only %d uploads acknowledged after 30s", round, acks.Load())
			}
		}
		time.Sleep(time.Until(began.Add(r.killAt)))
		p.kill9(t)
		killedAt := time.Since(began)
		atKill := acks.Load()
		wg.Wait()
		acked, cut := 0, 0
		for _, u := range ups {
			switch {
			case u.acked:
				acked++
			case u.start < killedAt-100*time.Millisecond:
				cut++ // sent its first piece well before the kill: its chunks were being stored
			}
		}
		t.Logf("round %d: killed after %d acknowledged uploads (%d of %d acknowledged in all, %d cut)", round, atKill, acked, uploads, cut)

		p = startRelay(t, fmt.Sprintf("relay (restart %d)", round+1), cfg, api, admin)
		if cut > 0 {
			// The cleaner's first run at start-up removes the chunks the cut uploads left.
			relaytest.Eventually(t, 5*time.Second, "the restarted relay swept the chunks of the cut uploads", func() bool {
				return strings.Contains(p.out.String(), "swept_uploads=")
			})
		}
		for _, u := range ups {
			head := headFile(t, p.api, tgt.ID, src.ID, u.id, u.content)
			switch {
			case u.acked && head != http.StatusOK:
				t.Fatalf("round %d: acknowledged %s lost: HEAD %d", round, u.id, head)
			case head == http.StatusOK:
				requireFile(t, p.api, tgt, src.ID, u.id, u.content)
				u.present = true
			case head == http.StatusNotFound:
				if code, got := getFile(t, p.api, tgt, src.ID, u.id); code != http.StatusNotFound {
					t.Fatalf("round %d: %s: HEAD with its hash 404 but GET %d (%d bytes): a torn file", round, u.id, code, len(got))
				}
			default:
				t.Fatalf("round %d: %s: HEAD %d, want 200 or 404", round, u.id, head)
			}
			u.content, u.body = nil, nil
			all = append(all, u)
		}

		// Earlier rounds' files are as they were: the present ones still there, the others
		// still absent.
		present := 0
		for _, u := range all {
			if u.present {
				present++
			}
			want := http.StatusNotFound
			if u.present {
				want = http.StatusOK
			}
			if code, _ := relaytest.Do(t, http.MethodHead, filesURL(p.api, tgt.ID, src.ID, u.id)+"?hash="+u.hash, nil); code != want {
				t.Fatalf("after round %d: %s: HEAD %d, want %d", round, u.id, code, want)
			}
		}
		if st := status(t, p.api); st.Files != int64(present) {
			t.Fatalf("round %d: files_stored %d, but %d files are found", round, st.Files, present)
		}
	}
	p.stop(t)
}
