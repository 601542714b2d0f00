package relay_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/keel-relay/keel/relay/relaytest"
)

// TestSameFileConcurrentPuts: 16 clients PUT the same file id at once, again and again (an
// agent re-sending while its earlier attempt is in flight). Contention inside the store is
// never an error: every PUT is answered 200, and the file is one of the versions sent.
func TestSameFileConcurrentPuts(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	cfg := relaytest.Config(t, t.TempDir(), "root", relaytest.NodeMap(root, n1, src))
	r := relaytest.Start(t, cfg)
	const clients, rounds = 16, 15
	bodies := make([][]byte, clients)
	hashes := make(map[string]bool)
	for i := range bodies {
		file := content(1<<10, uint64(i))
		bodies[i] = relaytest.SignedBody(t, src, file, "1h")
		hashes[sha256hex(file)] = true
	}
	const path = "/shared-files/n1/src/same"
	errs := make(chan error, clients*rounds)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				a, err := tryDo(http.MethodPut, r.URL+path, bytes.NewReader(bodies[i]), nil)
				if err == nil && a.code != http.StatusOK {
					err = fmt.Errorf("PUT: %d %s", a.code, a.body)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	found := 0
	for h := range hashes {
		if a := head(t, r, path+"?hash="+h); a.code == http.StatusOK {
			found++
		}
	}
	if found != 1 {
		t.Errorf("%d versions of the file match by hash, want exactly 1", found)
	}
	if st := status(t, r); st.Files != 1 {
		t.Errorf("files_stored = %d, want 1", st.Files)
	}
}
