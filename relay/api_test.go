package relay_test

// End-to-end tests of the relay HTTP API: a real relay.Server (relaytest.Start) on loopback,
// with a real Badger store in t.TempDir(), real RSA keys and real HTTP. "Another relay" is a
// second relaytest relay; unreachable or hanging next hops are real listeners.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/reqauth"
	"github.com/keel-relay/keel/internal/wire/sigblock"
	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/admintoken"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/relaytest"
)

// prefixes returns the three prefixes the shared-files routes are served under.
func prefixes() []string { return []string{"", "/rudder/relay-api", "/rudder/relay-api/1"} }

// answer is what a request got back.
type answer struct {
	code int
	hdr  http.Header
	body []byte
}

// do sends one request (edit, when not nil, changes it just before it is sent) and returns the
// answer. It fails the test when the request cannot be sent.
func do(t testing.TB, method, url string, body io.Reader, edit func(*http.Request)) answer {
	t.Helper()
	a, err := tryDo(method, url, body, edit)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return a
}

// tryDo is do returning the transport error.
func tryDo(method, url string, body io.Reader, edit func(*http.Request)) (answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{code: resp.StatusCode, hdr: resp.Header, body: b}, nil
}

// put sends a PUT of body to the relay's API path.
func put(t testing.TB, r *relaytest.Relay, path string, body []byte) answer {
	t.Helper()
	return do(t, http.MethodPut, r.URL+path, bytes.NewReader(body), nil)
}

// head sends a HEAD to the relay's API path and checks that the answer carries a
// Content-Length, as every HEAD answer must.
func head(t testing.TB, r *relaytest.Relay, path string) answer {
	t.Helper()
	a := do(t, http.MethodHead, r.URL+path, nil, nil)
	if a.hdr.Get("Content-Length") == "" {
		t.Errorf("HEAD %s: %d without Content-Length", path, a.code)
	}
	return a
}

// signedBy signs a request as node id with key at time at (reqauth, the way a target node
// downloads its file).
func signedBy(t testing.TB, id string, key *rsa.PrivateKey, at time.Time) func(*http.Request) {
	return func(req *http.Request) {
		if err := reqauth.Sign(req, id, key, at); err != nil {
			t.Fatalf("reqauth.Sign: %v", err)
		}
	}
}

// get downloads path as node n (signed with its key, now).
func get(t testing.TB, r *relaytest.Relay, path string, n *relaytest.Node) answer {
	t.Helper()
	return do(t, http.MethodGet, r.URL+path, nil, signedBy(t, n.ID, n.Key, time.Now()))
}

// status returns the relay's /system/status.
func status(t testing.TB, r *relaytest.Relay) httpapi.Status {
	t.Helper()
	a := do(t, http.MethodGet, r.URL+"/rudder/relay-api/1/system/status", nil, nil)
	if a.code != http.StatusOK {
		t.Fatalf("system/status: %d %s", a.code, a.body)
	}
	st, err := httpapi.DecodeStatus(a.body)
	if err != nil {
		t.Fatalf("system/status: %v in %s", err, a.body)
	}
	return st
}

// metricsText scrapes the admin listener's /metrics.
func metricsText(t testing.TB, r *relaytest.Relay) string {
	t.Helper()
	a := do(t, http.MethodGet, r.Admin+"/metrics", nil, nil)
	if a.code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", a.code, a.body)
	}
	return string(a.body)
}

// metricValue returns the value of the series line that starts with series ("name{labels}" or
// "name"), or -1 when there is none.
func metricValue(t testing.TB, text, series string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startRelay starts a relay for node id with the node map nodes (written to its nodes file);
// edit, when not nil, changes the config first.
func startRelay(t testing.TB, id string, nodes []byte, edit func(*config.Config)) *relaytest.Relay {
	t.Helper()
	cfg := relaytest.Config(t, t.TempDir(), id, nodes)
	if edit != nil {
		edit(cfg)
	}
	return relaytest.Start(t, cfg)
}

// nodesJSON is relaytest.NodeMap plus raw entries (for nodes without a usable key-hash).
func nodesJSON(t testing.TB, nodes []*relaytest.Node, extra map[string]map[string]string) []byte {
	t.Helper()
	m := map[string]map[string]string{}
	if err := json.Unmarshal(relaytest.NodeMap(nodes...), &m); err != nil {
		t.Fatal(err)
	}
	maps.Copy(m, extra)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// brokenListener returns the address of a real listener that accepts connections and then
// either closes them at once (hang false) or keeps them open without ever answering.
func brokenListener(t testing.TB, hang bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !hang {
				_ = c.Close()
				continue
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// content returns n deterministic bytes that start with what a careless text reader trips on:
// CRLF, empty lines, a line that looks like a signature block header, NUL and non-UTF-8 bytes.
func content(n int, seed uint64) []byte {
	b := []byte("line\r\n\r\n\n\nheader=rudder-signature-v1\n\x00\x00\xff\xfe\r\r\n")
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for len(b) < n {
		b = append(b, byte(rng.Uint32()))
	}
	return b[:n]
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// blockLines returns the lines of a signature block signed by key over file, without line ends.
func blockLines(t testing.TB, key *rsa.PrivateKey, algorithm string, file []byte, hostname, ttl string) []string {
	t.Helper()
	b, err := sigblock.Sign(key, algorithm, bytes.NewReader(file), hostname, "2026-01-01 00:00:00 +0000", "TEST", ttl)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b.Raw), "\n"), "\n")
}

// withLine returns lines with the "key=..." line replaced by line ("" drops it), or with line
// appended when there is no such key.
func withLine(lines []string, key, line string) []string {
	out := make([]string, 0, len(lines)+1)
	found := false
	for _, l := range lines {
		if strings.HasPrefix(l, key+"=") {
			found = true
			if line != "" {
				out = append(out, line)
			}
			continue
		}
		out = append(out, l)
	}
	if !found && line != "" {
		out = append(out, line)
	}
	return out
}

// putBody lays out a PUT body: the block lines, an empty line, the file.
func putBody(lines []string, file []byte) []byte {
	return append([]byte(strings.Join(lines, "\n")+"\n\n"), file...)
}

// checkExpires checks that an answer's Expires header is want from now, give or take a minute.
func checkExpires(t testing.TB, a answer, want time.Duration) {
	t.Helper()
	exp, err := http.ParseTime(a.hdr.Get("Expires"))
	if err != nil {
		t.Fatalf("Expires %q: %v", a.hdr.Get("Expires"), err)
	}
	if d := time.Until(exp); d < want-time.Minute || d > want+time.Minute {
		t.Errorf("Expires %s is %s from now, want %s", a.hdr.Get("Expires"), d.Round(time.Second), want)
	}
}

// TestSharedFilesStoreHeadGet stores a file for a node of the relay, checks HEAD under every
// prefix, and who may GET it.
func TestSharedFilesStoreHeadGet(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	target := relaytest.NewNode("n1", "root", 1)
	other := relaytest.NewNode("n2", "root", 2)
	src := relaytest.NewNode("src", "root", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, target, other, src), nil)

	file := content(600<<10, 1) // more than two 256KiB chunks
	sum := sha256hex(file)
	const path = "/shared-files/n1/src/f1"
	if a := put(t, r, path+"?ttl=1h", relaytest.SignedBody(t, src, file, "")); a.code != http.StatusOK || string(a.body) != "stored\n" {
		t.Fatalf("PUT: %d %q, want 200 \"stored\\n\"", a.code, a.body)
	}
	if st := status(t, r); st.Files != 1 || st.QueueDepth != 0 {
		t.Fatalf("after PUT: files_stored %d queue_depth %d, want 1 and 0", st.Files, st.QueueDepth)
	}

	for _, p := range prefixes() {
		a := head(t, r, p+path+"?hash="+sum)
		if a.code != http.StatusOK {
			t.Fatalf("HEAD %s: %d, want 200", p+path, a.code)
		}
		if got := a.hdr.Get("Content-Length"); got != strconv.Itoa(len(file)) {
			t.Errorf("HEAD %s: Content-Length %s, want %d", p+path, got, len(file))
		}
		if got := a.hdr.Get("ETag"); got != `"`+sum+`"` {
			t.Errorf("HEAD %s: ETag %s, want %q", p+path, got, sum)
		}
		checkExpires(t, a, time.Hour)
		if a := head(t, r, p+path+"?hash="+strings.ToUpper(sum)); a.code != http.StatusOK {
			t.Errorf("HEAD %s with the hash in upper case: %d, want 200", p+path, a.code)
		}
		a = head(t, r, p+path+"?hash="+sha256hex([]byte("something else")))
		if a.code != http.StatusNotFound || a.hdr.Get("Content-Length") != "0" {
			t.Errorf("HEAD %s with a wrong hash: %d Content-Length %q, want 404 and 0", p+path, a.code, a.hdr.Get("Content-Length"))
		}
		// A missing, empty or malformed hash is "absent" too, even for a stored file, as
		// relayd answers: the agent then sends the file.
		for _, q := range []string{"", "?hash=", "?hash=zz", "?hash=" + sum[:len(sum)-1], "?hash=" + strings.Repeat(sum, 5)} {
			if a := head(t, r, p+path+q); a.code != http.StatusNotFound || a.hdr.Get("Content-Length") != "0" {
				t.Errorf("HEAD %s%s: %d Content-Length %q, want 404 and 0", p+path, q, a.code, a.hdr.Get("Content-Length"))
			}
		}
	}

	now := time.Now()
	// otherPath signs a request for another file and returns the headers it got.
	otherPath := func(req *http.Request) {
		dummy, err := http.NewRequest(http.MethodGet, r.URL+"/shared-files/n1/src/f2", nil)
		if err != nil {
			t.Fatal(err)
		}
		signedBy(t, target.ID, target.Key, now)(dummy)
		for _, h := range []string{reqauth.HeaderNode, reqauth.HeaderDate, reqauth.HeaderPubkey, reqauth.HeaderSignature} {
			req.Header.Set(h, dummy.Header.Get(h))
		}
	}
	tests := []struct {
		name   string
		path   string
		sign   func(*http.Request)
		code   int
		inBody string
	}{
		{"the target", path, signedBy(t, "n1", target.Key, now), http.StatusOK, ""},
		{"the target, versioned prefix", "/rudder/relay-api/1" + path, signedBy(t, "n1", target.Key, now), http.StatusOK, ""},
		{"another node", path, signedBy(t, "n2", other.Key, now), http.StatusForbidden, "not the target"},
		{"the source", path, signedBy(t, "src", src.Key, now), http.StatusForbidden, "not the target"},
		{"unsigned", path, nil, http.StatusForbidden, "missing header"},
		{"expired date", path, signedBy(t, "n1", target.Key, now.Add(-10*time.Minute)), http.StatusForbidden, "away from the relay's clock"},
		{"date in the future", path, signedBy(t, "n1", target.Key, now.Add(10*time.Minute)), http.StatusForbidden, "away from the relay's clock"},
		{"wrong key", path, signedBy(t, "n1", other.Key, now), http.StatusForbidden, "not the key of node"},
		{"unknown node", path, signedBy(t, "ghost", other.Key, now), http.StatusForbidden, "unknown"},
		{"signature of another path", path, otherPath, http.StatusForbidden, "does not verify"},
		{"the target, no such file", "/shared-files/n1/src/nope", signedBy(t, "n1", target.Key, now), http.StatusNotFound, "no such file"},
	}
	for _, tc := range tests {
		t.Run("GET by "+tc.name, func(t *testing.T) {
			a := do(t, http.MethodGet, r.URL+tc.path, nil, tc.sign)
			if a.code != tc.code {
				t.Fatalf("GET: %d %q, want %d", a.code, a.body, tc.code)
			}
			if tc.code != http.StatusOK {
				if !strings.Contains(string(a.body), tc.inBody) {
					t.Errorf("GET: body %q does not say %q", a.body, tc.inBody)
				}
				return
			}
			if !bytes.Equal(a.body, file) {
				t.Errorf("GET: %d bytes that differ from the %d stored", len(a.body), len(file))
			}
			if a.hdr.Get("ETag") != `"`+sum+`"` || a.hdr.Get("Content-Length") != strconv.Itoa(len(file)) {
				t.Errorf("GET: ETag %s Content-Length %s, want %q and %d", a.hdr.Get("ETag"), a.hdr.Get("Content-Length"), sum, len(file))
			}
		})
	}

	// A new version replaces the old one.
	file2 := content(1000, 2)
	if a := put(t, r, "/rudder/relay-api/1"+path+"?ttl=2h", relaytest.SignedBody(t, src, file2, "")); a.code != http.StatusOK {
		t.Fatalf("PUT of a new version: %d %s", a.code, a.body)
	}
	if st := status(t, r); st.Files != 1 {
		t.Errorf("after replacing: files_stored %d, want 1", st.Files)
	}
	if a := head(t, r, path+"?hash="+sha256hex(file2)); a.code != http.StatusOK || a.hdr.Get("Content-Length") != "1000" {
		t.Errorf("HEAD of the new version: %d Content-Length %s, want 200 and 1000", a.code, a.hdr.Get("Content-Length"))
	}
	if a := head(t, r, path+"?hash="+sum); a.code != http.StatusNotFound {
		t.Errorf("HEAD of the replaced version: %d, want 404", a.code)
	}
	if a := get(t, r, path, target); a.code != http.StatusOK || !bytes.Equal(a.body, file2) {
		t.Errorf("GET of the new version: %d, %d bytes (equal: %v)", a.code, len(a.body), bytes.Equal(a.body, file2))
	}
}

// TestSharedFilesRefusals sends every kind of bad request the spec lists and checks the exact
// refusal, and that nothing was stored or queued by it.
func TestSharedFilesRefusals(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	target := relaytest.NewNode("n1", "root", 1)
	other := relaytest.NewNode("n2", "root", 2)
	src := relaytest.NewNode("src", "root", 3)
	nodes := nodesJSON(t, []*relaytest.Node{root, target, other, src}, map[string]map[string]string{
		"nokey":    {"hostname": "nokey.example.test", "policy-server": "root"},
		"emptykey": {"hostname": "emptykey.example.test", "policy-server": "root", "key-hash": "sha256:"},
		"badkey":   {"hostname": "badkey.example.test", "policy-server": "root", "key-hash": "md5:0011"},
	})
	r := startRelay(t, "root", nodes, nil)

	file := []byte("payload\r\n\n\x00end")
	lines := blockLines(t, src.Key, "sha256", file, src.Hostname, "")
	good := putBody(lines, file)
	// Sanity: the good body is accepted, on a relay of its own so this test's counts stay 0.
	if a := put(t, startRelay(t, "root", nodes, nil), "/shared-files/n1/src/f?ttl=1h", good); a.code != http.StatusOK {
		t.Fatalf("the good body is refused: %d %s", a.code, a.body)
	}
	tampered := bytes.Clone(good)
	tampered[len(tampered)-1] ^= 1
	longID := strings.Repeat("a", 256)
	hash := sha256hex(file)
	withTTL := func(ttl string) []byte { return putBody(withLine(lines, "ttl", "ttl="+ttl), file) }

	const (
		put, head, get = http.MethodPut, http.MethodHead, http.MethodGet
		bad, forbidden = http.StatusBadRequest, http.StatusForbidden
	)
	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		code   int
		inBody string // for PUT and GET
	}{
		// Ids.
		{"target ..", put, "/shared-files/../src/f?ttl=1h", good, bad, "target: invalid node id"},
		{"target %2e%2e", put, "/shared-files/%2e%2e/src/f?ttl=1h", good, bad, "target: invalid node id"},
		{"target .", put, "/shared-files/./src/f?ttl=1h", good, bad, "target: invalid node id"},
		{"target with !", put, "/shared-files/n1%21/src/f?ttl=1h", good, bad, "target: invalid node id"},
		{"target with a space", put, "/shared-files/n%201/src/f?ttl=1h", good, bad, "target: invalid node id"},
		{"target too long", put, "/shared-files/" + longID + "/src/f?ttl=1h", good, bad, "target: invalid node id"},
		{"source ..", put, "/shared-files/n1/../f?ttl=1h", good, bad, "source: invalid node id"},
		{"source %2E%2E", put, "/rudder/relay-api/1/shared-files/n1/%2E%2E/f?ttl=1h", good, bad, "source: invalid node id"},
		{"source with @", put, "/shared-files/n1/s%40rc/f?ttl=1h", good, bad, "source: invalid node id"},
		{"file ..", put, "/shared-files/n1/src/..?ttl=1h", good, bad, "file id: invalid"},
		{"file %2e%2e", put, "/rudder/relay-api/shared-files/n1/src/%2e%2e?ttl=1h", good, bad, "file id: invalid"},
		{"file .", put, "/shared-files/n1/src/.?ttl=1h", good, bad, "file id: invalid"},
		{"file with *", put, "/shared-files/n1/src/f%2A?ttl=1h", good, bad, "file id: invalid"},
		{"file with é", put, "/shared-files/n1/src/caf%C3%A9?ttl=1h", good, bad, "file id: invalid"},
		{"file with ~", put, "/shared-files/n1/src/f~1?ttl=1h", good, bad, "file id: invalid"},
		{"file too long", put, "/shared-files/n1/src/" + longID + "?ttl=1h", good, bad, "file id: invalid"},
		// TTL.
		{"ttl 1x", put, "/shared-files/n1/src/f?ttl=1x", good, bad, `ttl: invalid TTL "1x"`},
		{"ttl 0", put, "/shared-files/n1/src/f?ttl=0", good, bad, `invalid TTL "0"`},
		{"ttl 0s", put, "/shared-files/n1/src/f?ttl=0s", good, bad, `invalid TTL "0s"`},
		{"ttl over 10 years", put, "/shared-files/n1/src/f?ttl=3651d", good, bad, "longer than the maximum"},
		{"ttl over 10 years in seconds", put, "/shared-files/n1/src/f?ttl=315360001", good, bad, "longer than the maximum"},
		{"ttl negative", put, "/shared-files/n1/src/f?ttl=-5", good, bad, "invalid TTL"},
		{"ttl parts out of order", put, "/shared-files/n1/src/f?ttl=1s2d", good, bad, "invalid TTL"},
		{"ttl nowhere", put, "/shared-files/n1/src/f", good, bad, "ttl: missing"},
		{"ttl empty query, none in block", put, "/shared-files/n1/src/f?ttl=", good, bad, "ttl: missing"},
		{"ttl line bad", put, "/shared-files/n1/src/f", withTTL("soon"), bad, `invalid TTL "soon"`},
		{"ttl line zero", put, "/shared-files/n1/src/f", withTTL("0"), bad, `invalid TTL "0"`},
		{"ttl line over 10 years", put, "/shared-files/n1/src/f", withTTL("3651days"), bad, "longer than the maximum"},
		// Signature block.
		{"no header line", put, "/shared-files/n1/src/f?ttl=1h", putBody(lines[1:], file), bad, "signature block: malformed signature block: line 1"},
		{"another header", put, "/shared-files/n1/src/f?ttl=1h", putBody(withLine(lines, "header", "header=rudder-signature-v2"), file), bad, "line 1"},
		{"duplicated key", put, "/shared-files/n1/src/f?ttl=1h", putBody(append(slices.Clone(lines), "keyid=again"), file), bad, `key "keyid" given twice`},
		{"duplicated digest", put, "/shared-files/n1/src/f?ttl=1h", putBody(append(slices.Clone(lines), lines[2]), file), bad, `key "digest" given twice`},
		{"digest not hex", put, "/shared-files/n1/src/f?ttl=1h", putBody(withLine(lines, "digest", "digest=zz"+strings.TrimPrefix(lines[2], "digest=")[2:]), file), bad, "digest"},
		{"digest odd length", put, "/shared-files/n1/src/f?ttl=1h", putBody(withLine(lines, "digest", lines[2]+"a"), file), bad, "digest"},
		{"digest empty", put, "/shared-files/n1/src/f?ttl=1h", putBody(withLine(lines, "digest", "digest="), file), bad, "digest"},
		{"no digest", put, "/shared-files/n1/src/f?ttl=1h", putBody(withLine(lines, "digest", ""), file), bad, `no "digest" line`},
		{"algorithm md5", put, "/shared-files/n1/src/f?ttl=1h", putBody(withLine(lines, "algorithm", "algorithm=md5"), file), bad, "unknown algorithm"},
		{"short_pubkey not base64", put, "/shared-files/n1/src/f?ttl=1h", putBody(withLine(lines, "short_pubkey", "short_pubkey=!!!"), file), bad, "short_pubkey"},
		{"line without =", put, "/shared-files/n1/src/f?ttl=1h", putBody(append(slices.Clone(lines), "no equals sign"), file), bad, "is not key=value"},
		{"no empty line", put, "/shared-files/n1/src/f?ttl=1h", []byte(strings.Join(lines, "\n") + "\n"), bad, "input ends before the empty line"},
		{"empty body", put, "/shared-files/n1/src/f?ttl=1h", []byte{}, bad, "signature block"},
		{"file without block", put, "/shared-files/n1/src/f?ttl=1h", file, bad, "signature block"},
		// Source and signature.
		{"unknown source", put, "/shared-files/n1/ghost/f?ttl=1h", good, forbidden, "source node ghost is unknown"},
		{"source without key-hash", put, "/shared-files/n1/nokey/f?ttl=1h", good, forbidden, "no usable key-hash"},
		{"source with sha256: empty", put, "/shared-files/n1/emptykey/f?ttl=1h", good, forbidden, "no usable key-hash"},
		{"source with an unusable key-hash", put, "/shared-files/n1/badkey/f?ttl=1h", good, forbidden, "no usable key-hash"},
		{"key of another node", put, "/shared-files/n1/src/f?ttl=1h", relaytest.SignedBody(t, other, file, ""), forbidden, "not the key of source node src"},
		{"tampered content", put, "/shared-files/n1/src/f?ttl=1h", tampered, forbidden, "signature does not verify"},
		{"signature of another file", put, "/shared-files/n1/src/f?ttl=1h", putBody(lines, []byte("another file")), forbidden, "signature does not verify"},
		// Routing.
		{"root, unknown target", put, "/shared-files/ghost/src/f?ttl=1h", good, http.StatusNotFound, "target ghost is not below this relay"},
		{"root, unknown target, versioned prefix", put, "/rudder/relay-api/1/shared-files/ghost/src/f?ttl=1h", good, http.StatusNotFound, "not below this relay"},
		// HEAD.
		{"HEAD without hash", head, "/shared-files/n1/src/f", nil, http.StatusNotFound, ""},
		{"HEAD with an empty hash", head, "/shared-files/n1/src/f?hash=", nil, http.StatusNotFound, ""},
		{"HEAD with a non-hex hash", head, "/shared-files/n1/src/f?hash=xyz", nil, http.StatusNotFound, ""},
		{"HEAD with an odd-length hash", head, "/shared-files/n1/src/f?hash=abc", nil, http.StatusNotFound, ""},
		{"HEAD with a huge hash", head, "/shared-files/n1/src/f?hash=" + strings.Repeat("ab", 200), nil, http.StatusNotFound, ""},
		{"HEAD target ..", head, "/shared-files/%2e%2e/src/f?hash=" + hash, nil, bad, ""},
		{"HEAD file with *", head, "/shared-files/n1/src/f%2A?hash=" + hash, nil, bad, ""},
		{"HEAD root, unknown target", head, "/shared-files/ghost/src/f?hash=" + hash, nil, http.StatusNotFound, ""},
		{"HEAD no such file", head, "/shared-files/n1/src/f?hash=" + hash, nil, http.StatusNotFound, ""},
		// GET.
		{"GET file ..", get, "/shared-files/n1/src/%2e%2e", nil, bad, "file id: invalid"},
		{"GET source with @", get, "/shared-files/n1/s%40rc/f", nil, bad, "source: invalid node id"},
		{"GET unsigned", get, "/shared-files/n1/src/f", nil, forbidden, "missing header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != nil {
				body = bytes.NewReader(tc.body)
			}
			a := do(t, tc.method, r.URL+tc.path, body, nil)
			if a.code != tc.code {
				t.Errorf("%s %s: %d %q, want %d", tc.method, tc.path, a.code, a.body, tc.code)
			}
			if got, want := a.hdr.Get("Content-Length"), strconv.Itoa(len(a.body)); got != want {
				t.Errorf("Content-Length %q, want %q", got, want)
			}
			if tc.method != head && !strings.Contains(string(a.body), tc.inBody) {
				t.Errorf("body %q does not say %q", a.body, tc.inBody)
			}
			if tc.method != head && strings.Count(strings.TrimSuffix(string(a.body), "\n"), "\n") != 0 {
				t.Errorf("body %q is not one line", a.body)
			}
			if st := status(t, r); st.Files != 0 || st.QueueDepth != 0 {
				t.Errorf("after the refusal: files_stored %d queue_depth %d, want 0 and 0", st.Files, st.QueueDepth)
			}
		})
	}
}

// TestSharedFilesForward runs a root relay with a real sub-relay below it: a file for a node
// below the sub-relay is queued, delivered, and a HEAD for it is answered by the sub-relay.
func TestSharedFilesForward(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	sub := relaytest.NewNode("sub", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	n3 := relaytest.NewNode("n3", "sub", 2)
	n4 := relaytest.NewNode("n4", "sub", 3)

	s := startRelay(t, "sub", relaytest.NodeMap(sub, n3, n4), func(c *config.Config) {
		c.Role = config.RoleRelay
		c.Upstream = "http://" + relaytest.DownAddr(t)
	})
	sub.Hostname = s.APIAddr().String() // forward.sub_relay_url is http://{hostname}
	r := startRelay(t, "root", relaytest.NodeMap(root, sub, n1, n3, n4), nil)

	file := content(300<<10, 3)
	sum := sha256hex(file)
	const path = "/shared-files/n3/n4/f1"
	a := put(t, r, path+"?ttl=1h", relaytest.SignedBody(t, n4, file, ""))
	if a.code != http.StatusOK || string(a.body) != "queued for sub-relay sub\n" {
		t.Fatalf("PUT for a node below the sub-relay: %d %q, want 200 \"queued for sub-relay sub\"", a.code, a.body)
	}
	waitFor(t, "the sub-relay to store the file and the root's queue to empty", 10*time.Second, func() bool {
		return status(t, s).Files == 1 && status(t, r).QueueDepth == 0
	})
	if st := status(t, r); st.Files != 0 {
		t.Errorf("root: files_stored %d, want 0 (the file is not for it)", st.Files)
	}
	if a := get(t, s, path, n3); a.code != http.StatusOK || !bytes.Equal(a.body, file) {
		t.Errorf("GET on the sub-relay by the target: %d, identical bytes: %v", a.code, bytes.Equal(a.body, file))
	}
	// The root forwarded to the versioned route with the remaining TTL.
	if !regexp.MustCompile(`msg=request method=PUT path=/rudder/relay-api/1/shared-files/n3/n4/f1 peer=127\.0\.0\.1:\d+ status=200`).MatchString(s.LogText()) {
		t.Errorf("the sub-relay did not log the forwarded PUT on /rudder/relay-api/1/shared-files/n3/n4/f1")
	}
	checkExpires(t, head(t, s, path+"?hash="+sum), time.Hour)
	if m := metricsText(t, r); metricValue(t, m, `keel_forward_attempts_total{hop="sub",result="delivered"}`) != 1 {
		t.Errorf("root: no delivered forward to sub in the metrics:\n%s", m)
	}

	// HEAD through the root is answered by the sub-relay.
	for _, p := range prefixes() {
		a := head(t, r, p+path+"?hash="+sum)
		if a.code != http.StatusOK || a.hdr.Get("Content-Length") != strconv.Itoa(len(file)) || a.hdr.Get("ETag") != `"`+sum+`"` {
			t.Errorf("HEAD %s via the root: %d Content-Length %s ETag %s, want 200, %d, %q",
				p+path, a.code, a.hdr.Get("Content-Length"), a.hdr.Get("ETag"), len(file), sum)
		}
	}
	if a := head(t, r, path+"?hash="+sha256hex(nil)); a.code != http.StatusNotFound || a.hdr.Get("Content-Length") != "0" {
		t.Errorf("HEAD via the root with a wrong hash: %d Content-Length %q, want 404 and 0", a.code, a.hdr.Get("Content-Length"))
	}
	if a := head(t, r, "/shared-files/n3/n4/never-sent?hash="+sum); a.code != http.StatusNotFound {
		t.Errorf("HEAD via the root of a file never sent: %d, want 404", a.code)
	}
	if !strings.Contains(s.LogText(), "method=HEAD path=/rudder/relay-api/1/shared-files/n3/n4/f1") {
		t.Errorf("the sub-relay did not log the HEAD asked of it")
	}

	// The sub-relay goes down: HEAD answers 502 (not 404, which would make the client re-send),
	// and a new PUT stays queued.
	if err := s.Stop(); err != nil {
		t.Fatalf("stopping the sub-relay: %v", err)
	}
	if a := head(t, r, path+"?hash="+sum); a.code != http.StatusBadGateway || a.hdr.Get("Content-Length") != "0" {
		t.Errorf("HEAD via the root, sub-relay down: %d Content-Length %q, want 502 and 0", a.code, a.hdr.Get("Content-Length"))
	}
	if a := put(t, r, "/shared-files/n3/n4/f2?ttl=1h", relaytest.SignedBody(t, n4, file, "")); a.code != http.StatusOK {
		t.Fatalf("PUT, sub-relay down: %d %s", a.code, a.body)
	}
	waitFor(t, "a failed forward attempt", 10*time.Second, func() bool {
		return metricValue(t, metricsText(t, r), `keel_forward_attempts_total{hop="sub",result="retry"}`) >= 1
	})
	if st := status(t, r); st.QueueDepth != 1 || st.Files != 0 {
		t.Errorf("sub-relay down: queue_depth %d files_stored %d, want 1 and 0", st.QueueDepth, st.Files)
	}
}

// TestForwardRefusedForGood: a next hop that refuses a file before reading it (here 413, the
// file is over its http.max_body) is answered for good: the job is dropped at the first attempt,
// not retried as if the connection had failed.
func TestForwardRefusedForGood(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	sub := relaytest.NewNode("sub", "root", 0)
	n3 := relaytest.NewNode("n3", "sub", 2)
	n4 := relaytest.NewNode("n4", "sub", 3)
	s := startRelay(t, "sub", relaytest.NodeMap(sub, n3, n4), func(c *config.Config) {
		c.Role = config.RoleRelay
		c.Upstream = "http://" + relaytest.DownAddr(t)
		c.HTTP.MaxBody = 64 * config.KiB
	})
	sub.Hostname = s.APIAddr().String()
	r := startRelay(t, "root", relaytest.NodeMap(root, sub, n3, n4), nil)

	// Big enough that the sub-relay's refusal comes long before the body could be sent.
	if a := put(t, r, "/shared-files/n3/n4/big?ttl=1h", relaytest.SignedBody(t, n4, content(16<<20, 8), "")); a.code != http.StatusOK {
		t.Fatalf("PUT: %d %s", a.code, a.body)
	}
	waitFor(t, "the root to drop the job", 10*time.Second, func() bool {
		return metricValue(t, metricsText(t, r), `keel_forward_attempts_total{hop="sub",result="dropped"}`) == 1
	})
	if n := metricValue(t, metricsText(t, r), `keel_forward_attempts_total{hop="sub",result="retry"}`); n > 0 {
		t.Errorf("%v retries of a file the next hop refused for good, want 0", n)
	}
	if st := status(t, r); st.QueueDepth != 0 {
		t.Errorf("queue_depth %d, want 0", st.QueueDepth)
	}
	if !strings.Contains(r.LogText(), "status=413") {
		t.Errorf("the root did not log the 413:\n%s", r.LogText())
	}
}

// TestForwardRefusalCostsNoBody: the forward worker asks for "100 Continue" before sending a
// large file, so that a next hop that refuses it (here a server answering 413 at once) makes
// it send none of the body: on a slow link that is the difference between a refusal and an
// hour of wasted upload.
func TestForwardRefusalCostsNoBody(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: ln}
	expects := make(chan string, 10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		expects <- r.Header.Get("Expect")
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	})}
	go func() { _ = srv.Serve(counted) }()
	t.Cleanup(func() { _ = srv.Close() })

	root := relaytest.NewNode("root", "root", 0)
	sub := relaytest.NewNode("sub", "root", 0)
	sub.Hostname = ln.Addr().String()
	n3 := relaytest.NewNode("n3", "sub", 2)
	n4 := relaytest.NewNode("n4", "sub", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, sub, n3, n4), nil)
	if a := put(t, r, "/shared-files/n3/n4/big?ttl=1h", relaytest.SignedBody(t, n4, content(4<<20, 9), "")); a.code != http.StatusOK {
		t.Fatalf("PUT: %d %s", a.code, a.body)
	}
	waitFor(t, "the root to drop the job", 10*time.Second, func() bool {
		return metricValue(t, metricsText(t, r), `keel_forward_attempts_total{hop="sub",result="dropped"}`) == 1
	})
	if got := <-expects; got != "100-continue" {
		t.Errorf("Expect: %q, want 100-continue", got)
	}
	// The request head is well under 64 KiB; 4 MiB of body would not be.
	if n := counted.read.Load(); n > 64<<10 {
		t.Errorf("the next hop received %d bytes for a refused 4 MiB file", n)
	}
}

// TestForwardExpectationFailed: a next hop that answers 417 to "Expect: 100-continue" (an old
// proxy) gets the file at once, without the header, in the same attempt.
func TestForwardExpectationFailed(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got [][]byte
	next := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Expect") != "" {
			w.WriteHeader(http.StatusExpectationFailed)
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		mu.Lock()
		got = append(got, b)
		mu.Unlock()
	}))
	t.Cleanup(next.Close)
	root := relaytest.NewNode("root", "root", 0)
	sub := relaytest.NewNode("sub", "root", 0)
	sub.Hostname = strings.TrimPrefix(next.URL, "http://")
	n3 := relaytest.NewNode("n3", "sub", 2)
	n4 := relaytest.NewNode("n4", "sub", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, sub, n3, n4), nil)
	body := relaytest.SignedBody(t, n4, content(1<<20, 10), "")
	if a := put(t, r, "/shared-files/n3/n4/f?ttl=1h", body); a.code != http.StatusOK {
		t.Fatalf("PUT: %d %s", a.code, a.body)
	}
	waitFor(t, "the delivery", 10*time.Second, func() bool {
		return metricValue(t, metricsText(t, r), `keel_forward_attempts_total{hop="sub",result="delivered"}`) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	// The upload as sent, with the relay's expires line added to its block.
	block, file, _ := bytes.Cut(body, []byte("\n\n"))
	want := regexp.MustCompile(`^` + regexp.QuoteMeta(string(block)) + `\nexpires=\d{10}\n\n`)
	if len(got) != 1 || !want.Match(got[0]) || !bytes.HasSuffix(got[0], file) || len(got[0]) != len(body)+len("expires=1234567890\n") {
		t.Errorf("the next hop received %d bodies; the first is the upload with the relay's expires line: %v", len(got), len(got) > 0 && want.Match(got[0]))
	}
}

// countingListener counts the bytes read from all its connections.
type countingListener struct {
	net.Listener
	read atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, read: &l.read}, nil
}

type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// TestForwardQueue fills the forward queue of a relay whose upstream is down.
func TestForwardQueue(t *testing.T) {
	t.Parallel()
	n1 := relaytest.NewNode("n1", "relay1", 1)
	src := relaytest.NewNode("src", "relay1", 3)
	r := startRelay(t, "relay1", relaytest.NodeMap(n1, src), func(c *config.Config) {
		c.Role = config.RoleRelay
		c.Upstream = "http://" + relaytest.DownAddr(t)
		c.Forward.MaxJobs = 1
	})
	file := content(5000, 4)
	a := put(t, r, "/shared-files/elsewhere/src/f1?ttl=1h", relaytest.SignedBody(t, src, file, ""))
	if a.code != http.StatusOK || string(a.body) != "queued for upstream\n" {
		t.Fatalf("PUT for an unknown target on a relay: %d %q, want 200 \"queued for upstream\"", a.code, a.body)
	}
	if st := status(t, r); st.QueueDepth != 1 || st.Files != 0 {
		t.Fatalf("queue_depth %d files_stored %d, want 1 and 0", st.QueueDepth, st.Files)
	}
	// A new version of the queued file replaces it and takes no new slot.
	if a := put(t, r, "/shared-files/elsewhere/src/f1?ttl=1h", relaytest.SignedBody(t, src, content(6000, 5), "")); a.code != http.StatusOK {
		t.Errorf("PUT of a new version of the queued file, queue full: %d %s, want 200", a.code, a.body)
	}
	a = put(t, r, "/shared-files/elsewhere/src/f2?ttl=1h", relaytest.SignedBody(t, src, file, ""))
	if a.code != http.StatusInsufficientStorage || !strings.Contains(string(a.body), "forward queue is full") {
		t.Errorf("PUT of a second file, queue full: %d %q, want 507 saying the queue is full", a.code, a.body)
	}
	if st := status(t, r); st.QueueDepth != 1 || st.Files != 0 {
		t.Errorf("after the refusal: queue_depth %d files_stored %d, want 1 and 0", st.QueueDepth, st.Files)
	}
	// HEAD for a file that went upstream asks the upstream, which is down.
	if a := head(t, r, "/shared-files/elsewhere/src/f1?hash="+sha256hex(file)); a.code != http.StatusBadGateway {
		t.Errorf("HEAD, upstream down: %d, want 502", a.code)
	}
	waitFor(t, "a failed forward attempt", 10*time.Second, func() bool {
		return metricValue(t, metricsText(t, r), `keel_forward_attempts_total{hop="upstream",result="retry"}`) >= 1
	})
	if st := status(t, r); st.QueueDepth != 1 {
		t.Errorf("after a failed attempt: queue_depth %d, want 1 (still queued)", st.QueueDepth)
	}
}

// TestHeadNextHopFailures checks HEAD answers for a target below a sub-relay that cannot answer.
func TestHeadNextHopFailures(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	down := relaytest.NewNode("down", "root", 0)
	down.Hostname = relaytest.DownAddr(t)
	closer := relaytest.NewNode("closer", "root", 0)
	closer.Hostname = brokenListener(t, false)
	hang := relaytest.NewNode("hang", "root", 0)
	hang.Hostname = brokenListener(t, true)
	// A real relay that refuses the root's address answers 403: that is not an answer about the file.
	refuser := relaytest.NewNode("refuser", "root", 0)
	refuser.Hostname = startRelay(t, "refuser", nil, func(c *config.Config) {
		c.Role, c.Upstream = config.RoleRelay, "http://"+relaytest.DownAddr(t)
		c.HTTP.AllowedNetworks = []string{"10.0.0.0/8"}
	}).APIAddr().String()
	below := []*relaytest.Node{
		relaytest.NewNode("d1", "down", 1), relaytest.NewNode("c1", "closer", 1), relaytest.NewNode("h1", "hang", 1),
		relaytest.NewNode("r1", "refuser", 1),
	}
	r := startRelay(t, "root", relaytest.NodeMap(append([]*relaytest.Node{root, down, closer, hang, refuser}, below...)...), nil)

	tests := []struct {
		name     string
		target   string
		code     int
		min, max time.Duration
	}{
		{"sub-relay down", "d1", http.StatusBadGateway, 0, 3 * time.Second},
		{"sub-relay closes the connection", "c1", http.StatusBadGateway, 0, 3 * time.Second},
		{"sub-relay hangs", "h1", http.StatusGatewayTimeout, 4 * time.Second, 8 * time.Second}, // HeadTimeout 5s
		{"sub-relay answers 403", "r1", http.StatusBadGateway, 0, 3 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			a := head(t, r, "/shared-files/"+tc.target+"/src/f?hash="+sha256hex(nil))
			took := time.Since(start)
			if a.code != tc.code || a.hdr.Get("Content-Length") != "0" {
				t.Errorf("HEAD: %d Content-Length %q, want %d and 0", a.code, a.hdr.Get("Content-Length"), tc.code)
			}
			if took < tc.min || took > tc.max {
				t.Errorf("HEAD took %s, want %s to %s", took, tc.min, tc.max)
			}
		})
	}
}

// TestBodyLimits checks http.max_body, with and without a Content-Length.
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), func(c *config.Config) {
		c.HTTP.MaxBody = 64 * config.KiB
	})
	big := relaytest.SignedBody(t, src, content(100<<10, 6), "")
	small := relaytest.SignedBody(t, src, content(60<<10, 7), "")
	if len(small) > 64<<10 {
		t.Fatalf("the small body is %d bytes", len(small))
	}
	// chunked hides the reader's type so that the client cannot know the length.
	chunked := func(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b)) }
	tests := []struct {
		name    string
		body    io.Reader
		chunked bool
		code    int
		inBody  string
	}{
		{"over the limit, Content-Length", bytes.NewReader(big), false, http.StatusRequestEntityTooLarge, "exceeds the limit of 65536"},
		{"over the limit, chunked", chunked(big), true, http.StatusRequestEntityTooLarge, "exceeds the limit of 65536"},
		{"block over the limit, chunked", chunked(append([]byte("header=rudder-signature-v1\nx="), bytes.Repeat([]byte("y"), 70<<10)...)), true, http.StatusRequestEntityTooLarge, "exceeds the limit"},
		{"under the limit, chunked", chunked(small), true, http.StatusOK, "stored"},
		{"under the limit, Content-Length", bytes.NewReader(small), false, http.StatusOK, "stored"},
	}
	for i, tc := range tests {
		a := do(t, http.MethodPut, fmt.Sprintf("%s/shared-files/n1/src/f%d?ttl=1h", r.URL, i), tc.body, func(req *http.Request) {
			// A request with a body and no length is sent chunked.
			if unknown := req.ContentLength == 0; unknown != tc.chunked {
				t.Errorf("%s: request Content-Length %d", tc.name, req.ContentLength)
			}
		})
		if a.code != tc.code || !strings.Contains(string(a.body), tc.inBody) {
			t.Errorf("%s: %d %q, want %d saying %q", tc.name, a.code, a.body, tc.code, tc.inBody)
		}
	}
	if st := status(t, r); st.Files != 2 {
		t.Errorf("files_stored %d, want 2 (only the bodies under the limit)", st.Files)
	}
}

// rawPut sends a PUT of body to the relay over a raw connection, so that what reaches the relay
// and when is exact: the request head and the first n bytes of body, then between() (when not
// nil), then, when dribble is positive, the rest in 5KiB pieces dribble apart (when it is 0,
// the upload stalls). It returns the answer and the time from the first n bytes to it.
func rawPut(t *testing.T, r *relaytest.Relay, body []byte, path string, n int, dribble time.Duration, between func()) (*http.Response, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", r.APIAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: relay\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", path, len(body))
	if _, err := c.Write(body[:n]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if between != nil {
		between()
	}
	if dribble > 0 {
		for rest := body[n:]; len(rest) > 0; {
			time.Sleep(dribble)
			k := min(len(rest), 5<<10)
			if _, err := c.Write(rest[:k]); err != nil {
				t.Fatalf("writing the upload: %v", err)
			}
			rest = rest[k:]
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, time.Since(start)
}

// TestBodyIdleTimeout stalls uploads over raw connections and checks they are cut with 408
// while other uploads go on.
func TestBodyIdleTimeout(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), func(c *config.Config) {
		c.HTTP.BodyIdleTimeout = 300 * time.Millisecond
	})
	file := content(50<<10, 8)
	body := relaytest.SignedBody(t, src, file, "")
	blockLen := bytes.Index(body, []byte("\n\n")) + 2

	t.Run("stall in the file", func(t *testing.T) {
		t.Parallel()
		// Meanwhile, a normal upload succeeds.
		normal := make(chan answer, 1)
		go func() {
			time.Sleep(50 * time.Millisecond)
			a, err := tryDo(http.MethodPut, r.URL+"/shared-files/n1/src/normal?ttl=1h", bytes.NewReader(body), nil)
			if err != nil {
				a.body = []byte(err.Error())
			}
			normal <- a
		}()
		resp, took := rawPut(t, r, body, "/shared-files/n1/src/stalled?ttl=1h", blockLen+len(file)/2, 0, nil)
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("stalled upload: %d, want 408", resp.StatusCode)
		}
		if took < 300*time.Millisecond || took > 3*time.Second {
			t.Errorf("stalled upload cut after %s, want about 300ms", took)
		}
		if a := <-normal; a.code != http.StatusOK {
			t.Errorf("concurrent normal upload: %d %s", a.code, a.body)
		}
		if a := head(t, r, "/shared-files/n1/src/stalled?hash="+sha256hex(file)); a.code != http.StatusNotFound {
			t.Errorf("HEAD of the stalled upload: %d, want 404", a.code)
		}
		if a := head(t, r, "/shared-files/n1/src/normal?hash="+sha256hex(file)); a.code != http.StatusOK {
			t.Errorf("HEAD of the normal upload: %d, want 200", a.code)
		}
	})
	t.Run("stall in the block", func(t *testing.T) {
		t.Parallel()
		resp, _ := rawPut(t, r, body, "/shared-files/n1/src/stalled-block?ttl=1h", blockLen/2, 0, nil)
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("upload stalled in its block: %d, want 408", resp.StatusCode)
		}
	})
	t.Run("slow but steady", func(t *testing.T) {
		t.Parallel()
		// 10 pieces 100ms apart: a second in all, never 300ms without data.
		resp, took := rawPut(t, r, body, "/shared-files/n1/src/slow?ttl=1h", blockLen, 100*time.Millisecond, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("slow upload: %d, want 200", resp.StatusCode)
		}
		if took < 900*time.Millisecond {
			t.Errorf("slow upload took %s, want at least 900ms", took)
		}
	})
}

// TestClientHashValueAndExpires checks that what the client claims in the block (hash_value,
// expires) never reaches storage, and where the TTL is taken from.
func TestClientHashValueAndExpires(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), nil)
	file := content(3000, 9)
	lines := blockLines(t, src.Key, "sha256", file, src.Hostname, "")
	sum := sha256hex(file)
	wrong := sha256hex([]byte("not the file"))
	sha1sum := sha1.Sum(file)
	sha512sum := sha512.Sum512(file)

	tests := []struct {
		name    string
		query   string
		lines   []string
		hash    string // the hash HEAD must find (the ETag)
		expires time.Duration
	}{
		{"wrong hash_value", "?ttl=1h", withLine(lines, "hash_value", "hash_value="+wrong), sum, time.Hour},
		{"no hash_value", "?ttl=1h", withLine(lines, "hash_value", ""), sum, time.Hour},
		{"expires in the past", "?ttl=1h", withLine(lines, "expires", "expires=1"), sum, time.Hour},
		{"expires far away", "?ttl=60", withLine(lines, "expires", "expires=99999999999"), sum, time.Minute},
		{"ttl line only", "", withLine(lines, "ttl", "ttl=2h"), sum, 2 * time.Hour},
		{"ttl query wins over the line", "?ttl=30m", withLine(lines, "ttl", "ttl=2h"), sum, 30 * time.Minute},
		{"ttl query wins over a bad line", "?ttl=30m", withLine(lines, "ttl", "ttl=soon"), sum, 30 * time.Minute},
		{"ttl in full words", "?ttl=1day%202hours%203minute%204seconds", lines, sum, 26*time.Hour + 3*time.Minute + 4*time.Second},
		{"ttl line in full words", "", withLine(lines, "ttl", "ttl=1day 2hours"), sum, 26 * time.Hour},
		{"unknown keys kept", "?ttl=1h", append(slices.Clone(lines), "comment=whatever", "x-extra = spaced "), sum, time.Hour},
		{"sha1 signature", "?ttl=1h", blockLines(t, src.Key, "sha1", file, src.Hostname, ""), hex.EncodeToString(sha1sum[:]), time.Hour},
		{"sha512 signature", "?ttl=1h", blockLines(t, src.Key, "sha512", file, src.Hostname, ""), hex.EncodeToString(sha512sum[:]), time.Hour},
		{"CRLF block", "?ttl=1h", nil, sum, time.Hour},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := fmt.Sprintf("/shared-files/n1/src/f%d", i)
			body := putBody(tc.lines, file)
			if tc.lines == nil {
				body = append([]byte(strings.Join(lines, "\r\n")+"\r\n\r\n"), file...)
			}
			if a := put(t, r, path+tc.query, body); a.code != http.StatusOK {
				t.Fatalf("PUT: %d %s", a.code, a.body)
			}
			a := head(t, r, path+"?hash="+tc.hash)
			if a.code != http.StatusOK || a.hdr.Get("ETag") != `"`+tc.hash+`"` {
				t.Fatalf("HEAD with the computed hash: %d ETag %s, want 200 and %q", a.code, a.hdr.Get("ETag"), tc.hash)
			}
			checkExpires(t, a, tc.expires)
			if a := head(t, r, path+"?hash="+wrong); a.code != http.StatusNotFound {
				t.Errorf("HEAD with the client's wrong hash_value: %d, want 404", a.code)
			}
			if a := get(t, r, path, n1); a.code != http.StatusOK || !bytes.Equal(a.body, file) {
				t.Errorf("GET: %d, identical bytes: %v", a.code, bytes.Equal(a.body, file))
			}
		})
	}
}

// TestOpensslFixture uploads files signed with the openssl command line (testdata/openssl,
// made by make.sh), with bodies laid out as Rudder's agent does: "echo | cat file.sign - file".
func TestOpensslFixture(t *testing.T) {
	t.Parallel()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "openssl", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	file := read("file.bin")
	const source = "0b2d3c4e-5f60-4a1b-8c9d-0e1f2a3b4c5d"
	tests := []struct {
		name, sign, pin, hash string
	}{
		{"sha256 block, sha256// pin", "file.sign", "keyhash.b64", "file.bin.sha256"},
		{"sha512 block, sha256: hex pin", "file.sha512.sign", "keyhash.hex", "file.bin.sha512"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sign := read(tc.sign)
			want := strings.TrimSpace(string(read(tc.hash)))
			if tc.hash == "file.bin.sha256" && want != sha256hex(file) {
				t.Fatalf("openssl's sha256 %s differs from Go's %s", want, sha256hex(file))
			}
			root := relaytest.NewNode("root", "root", 0)
			n1 := relaytest.NewNode("n1", "root", 1)
			nodes := nodesJSON(t, []*relaytest.Node{root, n1}, map[string]map[string]string{
				source: {"hostname": "fixture.keel.test", "policy-server": "root", "key-hash": strings.TrimSpace(string(read(tc.pin)))},
			})
			r := startRelay(t, "root", nodes, nil)

			body := slices.Concat(sign, []byte("\n"), file) // echo | cat file.sign - file
			path := "/rudder/relay-api/1/shared-files/n1/" + source + "/fixture.bin"
			// curl (which agents use) asks for "100 Continue" before sending a large body.
			expect := func(req *http.Request) { req.Header.Set("Expect", "100-continue") }
			if a := do(t, http.MethodPut, r.URL+path+"?ttl=1d", bytes.NewReader(body), expect); a.code != http.StatusOK {
				t.Fatalf("PUT: %d %s", a.code, a.body)
			}
			a := head(t, r, path+"?hash="+want)
			if a.code != http.StatusOK || a.hdr.Get("Content-Length") != strconv.Itoa(len(file)) || a.hdr.Get("ETag") != `"`+want+`"` {
				t.Fatalf("HEAD: %d Content-Length %s ETag %s, want 200, %d, %q", a.code, a.hdr.Get("Content-Length"), a.hdr.Get("ETag"), len(file), want)
			}
			checkExpires(t, a, 24*time.Hour)
			if a := get(t, r, path, n1); a.code != http.StatusOK || !bytes.Equal(a.body, file) {
				t.Errorf("GET: %d, identical bytes: %v", a.code, bytes.Equal(a.body, file))
			}
			tampered := bytes.Clone(file)
			tampered[0] ^= 0x20
			if a := put(t, r, path+"2?ttl=1d", slices.Concat(sign, []byte("\n"), tampered)); a.code != http.StatusForbidden {
				t.Errorf("PUT of a tampered file: %d %s, want 403", a.code, a.body)
			}
		})
	}
}

// TestAllowedNetworks runs a relay whose allowed networks exclude loopback.
func TestAllowedNetworks(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), func(c *config.Config) {
		c.HTTP.AllowedNetworks = []string{"10.0.0.0/8"}
	})
	file := []byte("x")
	tests := []struct {
		name, method, path string
		body               []byte
		route              string
	}{
		{"PUT", http.MethodPut, "/shared-files/n1/src/f?ttl=1h", relaytest.SignedBody(t, src, file, ""), "shared-files"},
		{"PUT versioned", http.MethodPut, "/rudder/relay-api/1/shared-files/n1/src/f?ttl=1h", relaytest.SignedBody(t, src, file, ""), "shared-files"},
		{"HEAD", http.MethodHead, "/shared-files/n1/src/f?hash=" + sha256hex(file), nil, "shared-files"},
		{"GET", http.MethodGet, "/shared-files/n1/src/f", nil, "shared-files"},
		{"status", http.MethodGet, "/rudder/relay-api/1/system/status", nil, "system/status"},
		{"info", http.MethodGet, "/rudder/relay-api/1/system/info", nil, "system/info"},
	}
	for _, tc := range tests {
		var body io.Reader
		if tc.body != nil {
			body = bytes.NewReader(tc.body)
		}
		a := do(t, tc.method, r.URL+tc.path, body, nil)
		if a.code != http.StatusForbidden {
			t.Errorf("%s from 127.0.0.1: %d %s, want 403", tc.name, a.code, a.body)
		}
		if a.hdr.Get("Content-Length") == "" {
			t.Errorf("%s: 403 without Content-Length", tc.name)
		}
		if tc.method != http.MethodHead && !strings.Contains(string(a.body), "127.0.0.1") {
			t.Errorf("%s: body %q does not name the peer", tc.name, a.body)
		}
	}
	// The policy-server routes always allow loopback.
	if a := do(t, http.MethodPost, r.URL+"/rudder/relay-api/1/system/reload", nil, nil); a.code != http.StatusOK {
		t.Errorf("reload from loopback: %d %s, want 200", a.code, a.body)
	}
	m := metricsText(t, r)
	for series, want := range map[string]float64{
		`keel_http_access_refused_total{route="shared-files"}`:                   4,
		`keel_http_access_refused_total{route="system/status"}`:                  1,
		`keel_http_access_refused_total{route="system/info"}`:                    1,
		`keel_http_requests_total{route="shared-files",method="PUT",code="403"}`: 2,
	} {
		if got := metricValue(t, m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	a := do(t, http.MethodGet, r.Admin+"/status", nil, nil)
	var st httpapi.Status
	if a.code != http.StatusOK || json.Unmarshal(a.body, &st) != nil || st.Files != 0 {
		t.Errorf("admin /status: %d %s, want 200 and files_stored 0", a.code, a.body)
	}
}

// TestSystemEndpoints checks /system/status, /system/info and the admin listener.
func TestSystemEndpoints(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	nodes := relaytest.NodeMap(root, n1, src)
	r := startRelay(t, "root", nodes, nil)
	if a := put(t, r, "/shared-files/n1/src/f?ttl=1h", relaytest.SignedBody(t, src, []byte("data"), "")); a.code != http.StatusOK {
		t.Fatalf("PUT: %d %s", a.code, a.body)
	}

	for _, p := range []string{"/rudder/relay-api", "/rudder/relay-api/1"} {
		a := do(t, http.MethodGet, r.URL+p+"/system/status", nil, nil)
		if a.code != http.StatusOK || a.hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("%s/system/status: %d %s %s", p, a.code, a.hdr.Get("Content-Type"), a.body)
		}
		var env struct {
			Data           map[string]any
			Result, Action string
		}
		if err := json.Unmarshal(a.body, &env); err != nil {
			t.Fatal(err)
		}
		if env.Result != "success" || env.Action != "getStatus" {
			t.Errorf("%s/system/status: not in relayd's envelope: %s", p, a.body)
		}
		got := env.Data
		for _, key := range []string{"status", "version", "node_id", "role", "uptime_seconds", "node_map", "files_stored",
			"queue_depth", "store_bytes", "edge_daemons_connected", "nodes_file"} {
			if _, ok := got[key]; !ok {
				t.Errorf("%s/system/status has no %q: %s", p, key, a.body)
			}
		}
		if _, ok := got["node_map"].(map[string]any)["loaded_at"]; !ok {
			t.Errorf("%s/system/status: node_map has no loaded_at: %s", p, a.body)
		}
	}
	st := status(t, r)
	digest := sha256hex(nodes)
	if st.Status != "ok" || st.Version != "test" || st.NodeID != "root" || st.Role != "root" || st.Files != 1 || st.QueueDepth != 0 ||
		st.NodeMap.Nodes != 3 || st.NodeMap.Digest != digest || st.NodeMap.LastError != "" || st.NodesFile != r.Config.NodesFile ||
		time.Since(st.NodeMap.LoadedAt) > time.Minute || st.UptimeSec < 0 {
		t.Errorf("status %+v, want ok, test, root, root, 1 file, 0 queued, 3 nodes with digest %s", st, digest)
	}

	a := do(t, http.MethodGet, r.URL+"/rudder/relay-api/1/system/info", nil, nil)
	var infoEnv httpapi.Envelope[map[string]any]
	if a.code != http.StatusOK || json.Unmarshal(a.body, &infoEnv) != nil || infoEnv.Result != "success" || infoEnv.Action != "getSystemInfo" {
		t.Fatalf("system/info: %d %s", a.code, a.body)
	}
	info := infoEnv.Data
	if info["name"] != "keel-relay" || info["version"] != "test" || info["node_id"] != "root" || info["role"] != "root" ||
		fmt.Sprint(info["api_versions"]) != "[1]" || info["go_version"] == "" {
		t.Errorf("system/info: %s", a.body)
	}

	if a := do(t, http.MethodGet, r.Admin+"/status", nil, nil); a.code != http.StatusOK || !strings.Contains(string(a.body), `"files_stored": 1`) {
		t.Errorf("admin /status: %d %s", a.code, a.body)
	}
	a = do(t, http.MethodGet, r.Admin+"/backup", nil, nil)
	if a.code != http.StatusOK || len(a.body) == 0 || a.hdr.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("admin /backup: %d, %d bytes, %s", a.code, len(a.body), a.hdr.Get("Content-Type"))
	}

	// Routes that do not exist, or not with this method.
	for _, tc := range []struct {
		method, url string
		code        int
	}{
		{http.MethodGet, r.URL + "/metrics", http.StatusNotFound},
		{http.MethodGet, r.URL + "/nope", http.StatusNotFound},
		{http.MethodDelete, r.URL + "/shared-files/n1/src/f", http.StatusMethodNotAllowed},
		{http.MethodPost, r.URL + "/rudder/relay-api/1/shared-files/n1/src/f", http.StatusMethodNotAllowed},
		{http.MethodGet, r.URL + "/rudder/relay-api/1/system/reload", http.StatusMethodNotAllowed},
		{http.MethodPost, r.Admin + "/metrics", http.StatusMethodNotAllowed},
	} {
		if a := do(t, tc.method, tc.url, nil, nil); a.code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.url, a.code, tc.code)
		}
	}

	logLine := regexp.MustCompile(`level=INFO msg=request method=PUT path=/shared-files/n1/src/f peer=127\.0\.0\.1:\d+ status=200 bytes_in=\d+ bytes_out=7 took=`)
	if !logLine.MatchString(r.LogText()) {
		t.Errorf("the PUT was not logged with method, path, peer, status, bytes and duration:\n%s", r.LogText())
	}

	waitFor(t, "the cleaner's first run", 5*time.Second, func() bool {
		return metricValue(t, metricsText(t, r), "keel_cleaner_runs_total") >= 1
	})
	m := metricsText(t, r)
	for series, want := range map[string]float64{
		`keel_http_requests_total{route="shared-files",method="PUT",code="200"}`: 1,
		`keel_shared_files_stored`:                                        1,
		`keel_forward_queue_depth`:                                        0,
		`keel_node_map_nodes`:                                             3,
		`keel_node_map_loads_total{result="ok"}`:                          1,
		`keel_http_requests_total{route="other",method="GET",code="404"}`: 2,
	} {
		if got := metricValue(t, m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if got := metricValue(t, m, "keel_store_disk_bytes"); got < 0 {
		t.Errorf("no keel_store_disk_bytes in /metrics")
	}
	if !regexp.MustCompile(`(?m)^keel_build_info\{version="test",`).MatchString(m) {
		t.Errorf("no keel_build_info for version test")
	}
}

// TestCleanerExpires checks that the TTL cleaner removes an expired file and only that one.
func TestCleanerExpires(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), func(c *config.Config) {
		c.SharedFiles.CleanupInterval = time.Second
	})
	short, long := []byte("short-lived"), []byte("long-lived")
	// ttl=2: the expiry is kept in whole seconds, so the file is still there for at least a second.
	if a := put(t, r, "/shared-files/n1/src/short?ttl=2", relaytest.SignedBody(t, src, short, "")); a.code != http.StatusOK {
		t.Fatalf("PUT: %d %s", a.code, a.body)
	}
	if a := put(t, r, "/shared-files/n1/src/long?ttl=1h", relaytest.SignedBody(t, src, long, "")); a.code != http.StatusOK {
		t.Fatalf("PUT: %d %s", a.code, a.body)
	}
	if a := head(t, r, "/shared-files/n1/src/short?hash="+sha256hex(short)); a.code != http.StatusOK {
		t.Fatalf("HEAD before expiry: %d", a.code)
	}
	waitFor(t, "the cleaner to remove the expired file", 8*time.Second, func() bool { return status(t, r).Files == 1 })
	if a := head(t, r, "/shared-files/n1/src/short?hash="+sha256hex(short)); a.code != http.StatusNotFound || a.hdr.Get("Content-Length") != "0" {
		t.Errorf("HEAD after expiry: %d Content-Length %q, want 404 and 0", a.code, a.hdr.Get("Content-Length"))
	}
	if a := get(t, r, "/shared-files/n1/src/short", n1); a.code != http.StatusNotFound {
		t.Errorf("GET after expiry: %d, want 404", a.code)
	}
	if a := head(t, r, "/shared-files/n1/src/long?hash="+sha256hex(long)); a.code != http.StatusOK {
		t.Errorf("HEAD of the long-lived file: %d, want 200", a.code)
	}
	m := metricsText(t, r)
	if got := metricValue(t, m, "keel_cleaner_expired_files_total"); got != 1 {
		t.Errorf("keel_cleaner_expired_files_total = %v, want 1", got)
	}
	if got := metricValue(t, m, "keel_cleaner_runs_total"); got < 2 {
		t.Errorf("keel_cleaner_runs_total = %v, want at least 2", got)
	}
}

// TestExpiredBeforeCleaning checks that an expired file is gone for HEAD and GET even before the
// cleaner (here every minute) removes it.
func TestExpiredBeforeCleaning(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), nil)
	file := []byte("brief")
	if a := put(t, r, "/shared-files/n1/src/f?ttl=1", relaytest.SignedBody(t, src, file, "")); a.code != http.StatusOK {
		t.Fatalf("PUT: %d %s", a.code, a.body)
	}
	time.Sleep(1100 * time.Millisecond)
	if a := head(t, r, "/shared-files/n1/src/f?hash="+sha256hex(file)); a.code != http.StatusNotFound {
		t.Errorf("HEAD after expiry: %d, want 404", a.code)
	}
	if a := get(t, r, "/shared-files/n1/src/f", n1); a.code != http.StatusNotFound {
		t.Errorf("GET after expiry: %d, want 404", a.code)
	}
	if st := status(t, r); st.Files != 1 {
		t.Errorf("files_stored %d, want 1 (the cleaner has not run yet)", st.Files)
	}
}

// TestDrain stops a relay while an upload is in flight: the upload completes, Stop returns nil,
// and the file is there after a restart on the same data directory.
func TestDrain(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), func(c *config.Config) {
		c.HTTP.BodyIdleTimeout = 2 * time.Second
	})
	file := content(40<<10, 10)
	body := relaytest.SignedBody(t, src, file, "")
	const path = "/shared-files/n1/src/inflight"

	stopped := make(chan error, 1)
	drainStarts := func() {
		time.Sleep(200 * time.Millisecond) // the relay is reading the upload
		go func() { stopped <- r.Stop() }()
		// While it drains, the admin listener still answers, and says so.
		waitFor(t, "the admin status to say draining", 3*time.Second, func() bool {
			a, err := tryDo(http.MethodGet, r.Admin+"/status", nil, nil)
			return err == nil && a.code == http.StatusServiceUnavailable && bytes.Contains(a.body, []byte(`"status": "draining"`))
		})
		if v := metricValue(t, metricsText(t, r), "keel_draining"); v != 1 {
			t.Errorf("keel_draining = %v while draining, want 1", v)
		}
		waitFor(t, "the draining relay to refuse new connections", 2*time.Second, func() bool {
			_, err := tryDo(http.MethodGet, r.URL+"/rudder/relay-api/1/system/status", nil, nil)
			return err != nil
		})
	}
	// The rest of the upload comes slowly, 5KiB every 100ms, while the relay drains.
	resp, _ := rawPut(t, r, body, path+"?ttl=1h", 1000, 100*time.Millisecond, drainStarts)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT in flight during the drain: %d, want 200", resp.StatusCode)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := tryDo(http.MethodGet, r.URL+"/rudder/relay-api/1/system/status", nil, nil); err == nil {
		t.Errorf("the stopped relay still answers")
	}
	if !strings.Contains(r.LogText(), "keel-relay stopped") {
		t.Errorf("no 'keel-relay stopped' in the log")
	}

	r2 := relaytest.Start(t, r.Config)
	if a := head(t, r2, path+"?hash="+sha256hex(file)); a.code != http.StatusOK {
		t.Errorf("HEAD after the restart: %d, want 200", a.code)
	}
	if a := get(t, r2, path, n1); a.code != http.StatusOK || !bytes.Equal(a.body, file) {
		t.Errorf("GET after the restart: %d, identical bytes: %v", a.code, bytes.Equal(a.body, file))
	}
	if st := status(t, r2); st.Files != 1 {
		t.Errorf("files_stored after the restart: %d, want 1", st.Files)
	}
	if err := r2.Stop(); err != nil {
		t.Errorf("Stop after the restart: %v", err)
	}
}

// TestConcurrentPuts sends uploads of the same file and of distinct files at once, stored and
// queued, and checks the counts.
func TestConcurrentPuts(t *testing.T) {
	t.Parallel()
	n1 := relaytest.NewNode("n1", "relay1", 1)
	src := relaytest.NewNode("src", "relay1", 3)
	r := startRelay(t, "relay1", relaytest.NodeMap(n1, src), func(c *config.Config) {
		c.Role = config.RoleRelay
		c.Upstream = "http://" + relaytest.DownAddr(t)
		c.Forward.MinBackoff = time.Minute // keep the queued jobs still
		c.Forward.MaxBackoff = time.Minute
	})
	const n = 8
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = relaytest.SignedBody(t, src, content(20<<10, uint64(100+i)), "")
	}
	paths := []struct {
		name   string
		path   func(i int) string
		stored int64
		queued int64
	}{
		{"same file, stored", func(int) string { return "/shared-files/n1/src/same" }, 1, 0},
		{"distinct files, stored", func(i int) string { return fmt.Sprintf("/shared-files/n1/src/d%d", i) }, n, 0},
		{"same file, queued", func(int) string { return "/shared-files/elsewhere/src/same" }, 0, 1},
		{"distinct files, queued", func(i int) string { return fmt.Sprintf("/shared-files/elsewhere/src/d%d", i) }, 0, n},
	}
	var files, queued int64
	for _, p := range paths {
		var wg sync.WaitGroup
		codes := make([]int, n)
		for i := range n {
			wg.Go(func() {
				a, err := tryDo(http.MethodPut, r.URL+p.path(i)+"?ttl=1h", bytes.NewReader(bodies[i]), nil)
				if err == nil {
					codes[i] = a.code
				}
			})
		}
		wg.Wait()
		for i, c := range codes {
			if c != http.StatusOK {
				t.Errorf("%s: upload %d: %d, want 200", p.name, i, c)
			}
		}
		files, queued = files+p.stored, queued+p.queued
		if st := status(t, r); st.Files != files || st.QueueDepth != queued {
			t.Errorf("%s: files_stored %d queue_depth %d, want %d and %d", p.name, st.Files, st.QueueDepth, files, queued)
		}
	}
	// The stored "same" file is one of the uploads, whole.
	a := get(t, r, "/shared-files/n1/src/same", n1)
	found := false
	for _, b := range bodies {
		found = found || bytes.HasSuffix(b, a.body) && len(a.body) == 20<<10
	}
	if a.code != http.StatusOK || !found {
		t.Errorf("GET of the file uploaded %d times at once: %d, %d bytes, one of the uploads: %v", n, a.code, len(a.body), found)
	}
}

// TestDrainCutsStalledUpload stops a relay while an upload stalls past shutdown_grace: the
// upload is cut, Stop still returns nil, and nothing of the upload is there after a restart.
func TestDrainCutsStalledUpload(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), func(c *config.Config) {
		c.ShutdownGrace = 500 * time.Millisecond
	})
	file := content(600<<10, 11) // past the first chunk, so that chunks were written
	body := relaytest.SignedBody(t, src, file, "")
	c, err := net.Dial("tcp", r.APIAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT /shared-files/n1/src/cut?ttl=1h HTTP/1.1\r\nHost: relay\r\nContent-Length: %d\r\n\r\n", len(body))
	if _, err := c.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(start); took < 400*time.Millisecond || took > 5*time.Second {
		t.Errorf("Stop took %s, want about the 500ms grace", took)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil && resp.StatusCode == http.StatusOK {
		t.Errorf("the cut upload was answered 200")
	}

	r2 := relaytest.Start(t, r.Config)
	if st := status(t, r2); st.Files != 0 || st.QueueDepth != 0 {
		t.Errorf("after the restart: files_stored %d queue_depth %d, want 0 and 0", st.Files, st.QueueDepth)
	}
	if a := head(t, r2, "/shared-files/n1/src/cut?hash="+sha256hex(file)); a.code != http.StatusNotFound {
		t.Errorf("HEAD of the cut upload after the restart: %d, want 404", a.code)
	}
}

// A relay that cannot start (its port is taken) returns an error, closes what it opened, and
// leaves the data directory usable.
func TestNewFailsCleanly(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := relaytest.Config(t, t.TempDir(), "root", nil)
	cfg.HTTP.Listen = busy.Addr().String()
	if _, err := relay.New(cfg, relay.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err == nil {
		t.Fatal("relay.New succeeded on a busy port")
	}
	cfg.HTTP.Listen = "127.0.0.1:0"
	r := relaytest.Start(t, cfg) // the store was released
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestAdminToken: with admin.token_file the relay creates the token file (0600) and every
// admin route but /metrics wants the token; a wrong or missing one gets 401 and is logged.
func TestAdminToken(t *testing.T) {
	t.Parallel()
	tokenFile := filepath.Join(t.TempDir(), "keel", "admin.token")
	r := startRelay(t, "root", relaytest.NodeMap(relaytest.NewNode("root", "root", 0)), func(c *config.Config) {
		c.Admin.TokenFile = tokenFile
		c.Edge.Enabled, c.Edge.Listen = true, "127.0.0.1:0"
	})
	fi, err := os.Stat(tokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v; want mode 0600", fi, err)
	}
	tok, err := admintoken.Load(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(tokenFile)
	wrong, _ := admintoken.Parse([]byte(strings.Repeat("0", 64)))
	tests := []struct {
		name, method, path string
		tok                admintoken.Token
		code               int
	}{
		{"status, no token", http.MethodGet, "/status", admintoken.Token{}, http.StatusUnauthorized},
		{"status, wrong token", http.MethodGet, "/status", wrong, http.StatusUnauthorized},
		{"status", http.MethodGet, "/status", tok, http.StatusOK},
		{"backup, no token", http.MethodGet, "/backup", admintoken.Token{}, http.StatusUnauthorized},
		{"backup", http.MethodGet, "/backup", tok, http.StatusOK},
		{"reload, no token", http.MethodPost, "/reload", admintoken.Token{}, http.StatusUnauthorized},
		{"edge daemons, no token", http.MethodGet, "/edge/daemons", admintoken.Token{}, http.StatusUnauthorized},
		{"edge daemons", http.MethodGet, "/edge/daemons", tok, http.StatusOK},
		{"metrics, no token", http.MethodGet, "/metrics", admintoken.Token{}, http.StatusOK},
	}
	for _, tc := range tests {
		a := do(t, tc.method, r.Admin+tc.path, nil, func(req *http.Request) { tc.tok.Set(req) })
		if a.code != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.name, a.code, a.body, tc.code)
		}
		if a.code == http.StatusUnauthorized && (a.hdr.Get("WWW-Authenticate") == "" || bytes.Contains(a.body, raw[:64])) {
			t.Errorf("%s: 401 without WWW-Authenticate, or with the token in the body: %v %q", tc.name, a.hdr, a.body)
		}
	}
	if !strings.Contains(r.LogText(), `msg="admin request refused: no valid admin token" path=/status`) {
		t.Errorf("the refusal is not logged:\n%s", r.LogText())
	}
}
