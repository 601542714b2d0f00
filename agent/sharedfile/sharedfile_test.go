package sharedfile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/nodekey"
	"github.com/keel-relay/keel/internal/wire/keyhash"
	"github.com/keel-relay/keel/internal/wire/reqauth"
	"github.com/keel-relay/keel/internal/wire/sigblock"
)

// testKey makes an RSA key with openssl; it returns the key and the PEM public key file.
func testKey(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "key.pem"), filepath.Join(dir, "pub.pem")
	for _, args := range [][]string{
		{"genrsa", "-out", priv, "2048"},
		{"rsa", "-in", priv, "-pubout", "-out", pub},
	} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	k, err := nodekey.Load(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return k.Private, pub
}

// fakeRelay is a real HTTP server on loopback standing in for the relay's shared-files
// routes: it stores PUT bodies and answers HEAD and signed GET as the relay does.
type fakeRelay struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	bodies  map[string][]byte // path -> PUT body
	puts    int
	headErr int      // status for every HEAD when set
	putErr  int      // status for every PUT when set
	expects []string // the Expect header of every PUT
	// refuseExpect makes PUTs with an Expect header fail with 417, as an old proxy would.
	refuseExpect bool
	// serve, when set, answers GETs instead.
	serve func(w http.ResponseWriter, r *http.Request)
}

func newFakeRelay(t *testing.T) *fakeRelay {
	f := &fakeRelay{t: t, bodies: map[string][]byte{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.handle))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRelay) handle(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.Method {
	case http.MethodHead:
		if f.headErr != 0 {
			w.WriteHeader(f.headErr)
			return
		}
		b, ok := f.bodies[r.URL.Path]
		if ok {
			blk, err := sigblock.Read(bufio.NewReader(bytes.NewReader(b)))
			if err == nil && blk.HashValue == r.URL.Query().Get("hash") {
				w.WriteHeader(http.StatusOK)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
	case http.MethodPut:
		f.expects = append(f.expects, r.Header.Get("Expect"))
		if f.refuseExpect && r.Header.Get("Expect") != "" {
			w.WriteHeader(http.StatusExpectationFailed)
			return
		}
		if f.putErr != 0 {
			http.Error(w, "refused: bad signature", f.putErr)
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if r.ContentLength != int64(len(b)) {
			f.t.Errorf("PUT Content-Length %d, body %d bytes", r.ContentLength, len(b))
		}
		if r.URL.Query().Get("ttl") == "" {
			f.t.Errorf("PUT without ?ttl=: %s", r.URL)
		}
		f.bodies[r.URL.Path] = b
		f.puts++
	case http.MethodGet:
		if f.serve != nil {
			f.serve(w, r)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}
}

func newClient(t *testing.T, base, node string, key *rsa.PrivateKey, timeout time.Duration) *Client {
	t.Helper()
	c, err := New(Options{RelayURL: base, Timeout: timeout, Identity: Identity{NodeID: node, Key: key, Hostname: "src.example", KeyDate: "2024-01-01 00:00:00.000000000 +0000", KeyID: "ABCDEF01"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestShareSignatureVerifiesWithOpenSSL: the body Share sends is a signature block whose
// digest `openssl dgst -sha256 -verify` accepts over the file bytes, with the key's
// short_pubkey, and the file bytes follow it unchanged. A second Share sends nothing.
func TestShareSignatureVerifiesWithOpenSSL(t *testing.T) {
	key, pubPEM := testKey(t)
	relay := newFakeRelay(t)
	c := newClient(t, relay.srv.URL, "src", key, 10*time.Second)
	dir := t.TempDir()
	content := []byte("line 1\n\nbinary \x00\xff\r\n")
	path := writeFile(t, dir, "data", content)

	res, err := c.Share(context.Background(), "dst", "my.file", path, "1d")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Sent || res.Size != int64(len(content)) {
		t.Fatalf("result %+v", res)
	}
	body := relay.bodies["/rudder/relay-api/1/shared-files/dst/src/my.file"]
	br := bufio.NewReader(bytes.NewReader(body))
	blk, err := sigblock.Read(br)
	if err != nil {
		t.Fatalf("block: %v\n%s", err, body)
	}
	rest, _ := io.ReadAll(br)
	if !bytes.Equal(rest, content) {
		t.Fatalf("file bytes after the block: %q, want %q", rest, content)
	}
	sum := sha256.Sum256(content)
	if blk.Algorithm != "sha256" || blk.HashValue != hex.EncodeToString(sum[:]) || blk.Hostname != "src.example" || blk.KeyID != "ABCDEF01" || blk.KeyDate == "" {
		t.Errorf("block fields: %+v", blk)
	}
	if want := base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(&key.PublicKey)); blk.ShortPubkey != want {
		t.Errorf("short_pubkey %q, want %q", blk.ShortPubkey, want)
	}
	// The RSAPublicKey PEM body openssl writes is short_pubkey.
	rsaPub, err := exec.Command("openssl", "rsa", "-pubin", "-in", pubPEM, "-RSAPublicKey_out").Output()
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := pem.Decode(rsaPub); p == nil || base64.StdEncoding.EncodeToString(p.Bytes) != blk.ShortPubkey {
		t.Errorf("short_pubkey is not openssl's RSAPublicKey body")
	}
	sig := writeFile(t, dir, "sig", blk.Digest)
	out, err := exec.Command("openssl", "dgst", "-sha256", "-verify", pubPEM, "-signature", sig, path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verified OK") {
		t.Fatalf("openssl dgst -verify: %v\n%s", err, out)
	}

	res, err = c.Share(context.Background(), "dst", "my.file", path, "1d")
	if err != nil || res.Sent {
		t.Fatalf("second share: %+v %v, want nothing sent", res, err)
	}
	if relay.puts != 1 {
		t.Errorf("%d PUTs, want 1", relay.puts)
	}
	if ok, err := c.Has(context.Background(), "dst", "src", "my.file", res.Hash); !ok || err != nil {
		t.Errorf("Has: %v %v", ok, err)
	}
	if ok, err := c.Has(context.Background(), "dst", "src", "my.file", strings.Repeat("0", 64)); ok || err != nil {
		t.Errorf("Has with another hash: %v %v", ok, err)
	}
}

func TestShareErrors(t *testing.T) {
	key, _ := testKey(t)
	relay := newFakeRelay(t)
	c := newClient(t, relay.srv.URL, "src", key, 10*time.Second)
	dir := t.TempDir()
	path := writeFile(t, dir, "data", []byte("x"))
	ctx := context.Background()
	for _, tc := range []struct {
		name, target, id, path, ttl string
		headErr, putErr             int
		want                        string
	}{
		{"bad target", "a/b", "f", path, "1d", 0, 0, `target: invalid node id "a/b"`},
		{"bad id", "dst", "..", path, "1d", 0, 0, `invalid file id ".."`},
		{"bad ttl", "dst", "f", path, "1 fortnight", 0, 0, `invalid TTL "1 fortnight"`},
		{"zero ttl", "dst", "f", path, "0", 0, 0, "must be at least one second"},
		{"missing file", "dst", "f", filepath.Join(dir, "nope"), "1d", 0, 0, "nope"},
		{"directory", "dst", "f", dir, "1d", 0, 0, "is not a regular file"},
		{"HEAD error", "dst", "f", path, "1d", http.StatusBadGateway, 0, "relay answered 502 Bad Gateway"},
		{"PUT refused", "dst", "f", path, "1d", 0, http.StatusForbidden, "relay answered 403 Forbidden: refused: bad signature"},
	} {
		relay.mu.Lock()
		relay.headErr, relay.putErr = tc.headErr, tc.putErr
		relay.mu.Unlock()
		_, err := c.Share(ctx, tc.target, tc.id, tc.path, tc.ttl)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	// A large file refused before its body is read: the client asked for "100 Continue", so
	// the relay's answer arrives instead of a reset connection.
	big := writeFile(t, dir, "big", bytes.Repeat([]byte("x"), 4<<20))
	relay.mu.Lock()
	relay.headErr, relay.putErr, relay.expects = 0, http.StatusRequestEntityTooLarge, nil
	relay.mu.Unlock()
	if _, err := c.Share(ctx, "dst", "big", big, "1d"); err == nil || !strings.Contains(err.Error(), "relay answered 413") {
		t.Errorf("large file refused: %v, want the relay's 413", err)
	}
	relay.mu.Lock()
	if len(relay.expects) != 1 || relay.expects[0] != "100-continue" {
		t.Errorf("Expect headers of the PUTs: %q, want one 100-continue", relay.expects)
	}
	relay.mu.Unlock()

	// A proxy that refuses "Expect: 100-continue" (417): the file goes again without it.
	relay.mu.Lock()
	relay.putErr, relay.expects, relay.refuseExpect = 0, nil, true
	relay.mu.Unlock()
	if res, err := c.Share(ctx, "dst", "big", big, "1d"); err != nil || !res.Sent {
		t.Errorf("large file through a proxy refusing Expect: %+v %v", res, err)
	}
	relay.mu.Lock()
	if len(relay.expects) != 2 || relay.expects[0] != "100-continue" || relay.expects[1] != "" {
		t.Errorf("Expect headers of the PUTs: %q, want 100-continue then none", relay.expects)
	}
	if b := relay.bodies["/rudder/relay-api/1/shared-files/dst/src/big"]; len(b) < 4<<20 {
		t.Errorf("the relay holds %d bytes of the large file", len(b))
	}
	relay.refuseExpect = false
	relay.mu.Unlock()

	// A relay that is not there: an error, not "absent".
	down := newClient(t, "http://127.0.0.1:1", "src", key, 2*time.Second)
	if _, err := down.Has(ctx, "dst", "src", "f", strings.Repeat("0", 64)); err == nil {
		t.Error("Has against a closed port: no error")
	}
}

// TestCheckedReader: the bytes sent after the block must be those signed.
func TestCheckedReader(t *testing.T) {
	signed := []byte("hello world")
	sum := sha256.Sum256(signed)
	want := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name, now, err string
	}{
		{"unchanged", "hello world", ""},
		{"shrank", "hello", "shrank while it was being sent"},
		{"grew", "hello world!", "grew while it was being sent"},
		{"changed", "HELLO world", "changed while it was being sent"},
	} {
		r := &checkedReader{r: strings.NewReader(tc.now), left: int64(len(signed)), h: sha256.New(), want: want, path: "f"}
		got, err := io.ReadAll(r)
		if tc.err == "" {
			if err != nil || string(got) != tc.now {
				t.Errorf("%s: %q %v", tc.name, got, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.err)
		}
	}
}

// serveFile answers a signed GET by node with content, announcing etag as its hash.
func serveFile(t *testing.T, pub *rsa.PublicKey, node string, content []byte, etag string, extra func(w http.ResponseWriter)) func(http.ResponseWriter, *http.Request) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	pin, err := keyhash.Parse("sha256:" + hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		caller, err := reqauth.Verify(r, func(id string) (keyhash.Pin, bool) { return pin, id == node }, time.Now(), 0)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if !strings.Contains(r.URL.Path, "/"+caller+"/") {
			http.Error(w, "not the target", http.StatusForbidden)
			return
		}
		if etag != "" {
			w.Header().Set("ETag", `"`+etag+`"`)
		}
		w.Header().Set("Keel-Hash-Algorithm", "sha256")
		if extra != nil {
			extra(w)
			return
		}
		w.Write(content)
	}
}

func TestFetch(t *testing.T) {
	key, _ := testKey(t)
	relay := newFakeRelay(t)
	c := newClient(t, relay.srv.URL, "dst", key, 2*time.Second)
	content := bytes.Repeat([]byte("shared \x00 bytes\n"), 10000)
	sum := sha256.Sum256(content)
	good := hex.EncodeToString(sum[:])
	ctx := context.Background()

	dir := t.TempDir()
	dest := filepath.Join(dir, "out")
	relay.serve = serveFile(t, &key.PublicKey, "dst", content, good, nil)
	res, err := c.Fetch(ctx, "src", "f", dest, FetchOptions{Hash: good})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dest)
	if !bytes.Equal(got, content) || res.Hash != good || res.Size != int64(len(content)) {
		t.Fatalf("fetched %d bytes, %+v", len(got), res)
	}
	if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode())
	}
	if _, err := c.Fetch(ctx, "src", "f", dest, FetchOptions{Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode())
	}

	old := []byte("the previous version")
	for _, tc := range []struct {
		name  string
		serve func(http.ResponseWriter, *http.Request)
		opts  FetchOptions
		want  string
	}{
		{"corrupted body", serveFile(t, &key.PublicKey, "dst", append([]byte("X"), content[1:]...), good, nil), FetchOptions{}, "the relay announced " + good},
		{"expected hash differs", relay.serve, FetchOptions{Hash: strings.Repeat("ab", 32)}, "not the expected"},
		{"no ETag", serveFile(t, &key.PublicKey, "dst", content, "", nil), FetchOptions{}, "no usable ETag"},
		{"short body", serveFile(t, &key.PublicKey, "dst", nil, good, func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("short"))
		}), FetchOptions{}, "unexpected EOF"},
		{"stalled body", serveFile(t, &key.PublicKey, "dst", nil, good, func(w http.ResponseWriter) {
			w.Write(content[:10])
			w.(http.Flusher).Flush()
			time.Sleep(4 * time.Second)
		}), FetchOptions{}, "no progress for 2s"},
		{"not found", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no such file", http.StatusNotFound) }, FetchOptions{}, "not found"},
		{"refused", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "node dst is not the target", http.StatusForbidden)
		}, FetchOptions{}, "403 Forbidden: node dst is not the target"},
	} {
		if err := os.WriteFile(dest, old, 0o600); err != nil {
			t.Fatal(err)
		}
		relay.mu.Lock()
		relay.serve = tc.serve
		relay.mu.Unlock()
		_, err := c.Fetch(ctx, "src", "f", dest, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, old) {
			t.Errorf("%s: dest changed", tc.name)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("%s: temporary file left: %v", tc.name, entries)
		}
	}
	relay.serve = func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no such file", http.StatusNotFound) }
	if _, err := c.Fetch(ctx, "src", "f", dest, FetchOptions{}); !IsNotFound(err) || !errors.Is(err, ErrNotFound) {
		t.Errorf("404: IsNotFound(%v) is false", err)
	}
}

func TestAnnouncedHash(t *testing.T) {
	h64 := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		etag, algo, want, err string
	}{
		{`"` + h64 + `"`, "sha256", "sha256", ""},
		{`"` + h64 + `"`, "", "sha256", ""},
		{`W/"` + h64 + `"`, "SHA256", "sha256", ""},
		{`"` + strings.Repeat("cd", 20) + `"`, "", "sha1", ""},
		{`"` + strings.Repeat("cd", 64) + `"`, "sha512", "sha512", ""},
		{"", "sha256", "", "no usable ETag"},
		{`"xyz"`, "sha256", "", "no usable ETag"},
		{`"` + h64 + `"`, "md5", "", `"md5" is not sha1, sha256 or sha512`},
		{`"` + h64 + `"`, "sha512", "", "is not a sha512 hash"},
		{`"abcd"`, "", "", "is not sha1, sha256 or sha512"},
	} {
		hdr := http.Header{}
		if tc.etag != "" {
			hdr.Set("ETag", tc.etag)
		}
		if tc.algo != "" {
			hdr.Set("Keel-Hash-Algorithm", tc.algo)
		}
		algo, _, _, err := announcedHash(hdr)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q %q: got %v, want %q", tc.etag, tc.algo, err, tc.err)
			}
			continue
		}
		if err != nil || algo != tc.want {
			t.Errorf("%q %q: %q %v, want %q", tc.etag, tc.algo, algo, err, tc.want)
		}
	}
}

func FuzzAnnouncedHash(f *testing.F) {
	f.Add(`"`+strings.Repeat("ab", 32)+`"`, "sha256")
	f.Add(`W/"abcd"`, "")
	f.Add(`""`, "sha1")
	f.Fuzz(func(t *testing.T, etag, algo string) {
		hdr := http.Header{"Etag": {etag}, "Keel-Hash-Algorithm": {algo}}
		_, h, sum, err := announcedHash(hdr)
		if err != nil {
			return
		}
		b, derr := hex.DecodeString(sum)
		if derr != nil || len(b) != h.Size() {
			t.Fatalf("accepted %q (%q) as a %v hash", etag, algo, h)
		}
	})
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]os.FileMode{"0600": 0o600, "644": 0o644, "0": 0} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0800", "rw-r--r--", "01777", "-1", "0x1ff"} {
		if _, err := ParseMode(in); err == nil {
			t.Errorf("ParseMode(%q): no error", in)
		}
	}
}

func FuzzParseMode(f *testing.F) {
	for _, s := range []string{"0600", "777", "01777", "", "9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMode(s)
		if err == nil && m&^0o777 != 0 {
			t.Fatalf("ParseMode(%q) = %o", s, m)
		}
	})
}

// TestVerifier: the verify step of Fetch, for each hash the relay may announce, with and
// without an expected SHA-256.
func TestVerifier(t *testing.T) {
	content := []byte("shared content")
	s1, s256, s512 := sha1.Sum(content), sha256.Sum256(content), sha512.Sum512(content)
	h1, h256, h512 := hex.EncodeToString(s1[:]), hex.EncodeToString(s256[:]), hex.EncodeToString(s512[:])
	other := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, algo, etag, expected string
		length                     int64
		body                       []byte
		newErr, checkErr           string
	}{
		{"sha256", "sha256", h256, "", -1, content, "", ""},
		{"sha256 expected", "sha256", h256, h256, int64(len(content)), content, "", ""},
		{"sha1 expected sha256", "sha1", h1, h256, -1, content, "", ""},
		{"sha512 expected sha256", "", h512, h256, -1, content, "", ""},
		{"announced sha256 not expected", "sha256", h256, other, -1, content, "not the expected", ""},
		{"sha1, content not expected", "sha1", h1, other, -1, content, "", "expected " + other},
		{"corrupted", "sha256", h256, "", -1, []byte("shared c0ntent"), "", "the relay announced " + h256},
		{"short", "sha256", h256, "", int64(len(content)) + 1, content, "", "the relay announced 15"},
		{"long", "sha256", h256, "", int64(len(content)) - 1, content, "", "got 14 bytes, the relay announced 13"},
		{"unknown algorithm", "md5", h256, "", -1, content, "not sha1, sha256 or sha512", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{Header: http.Header{}, ContentLength: tc.length}
			resp.Header.Set("ETag", `"`+tc.etag+`"`)
			if tc.algo != "" {
				resp.Header.Set("Keel-Hash-Algorithm", tc.algo)
			}
			v, err := newVerifier(resp, tc.expected)
			if tc.newErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.newErr) {
					t.Fatalf("newVerifier: %v, want %q", err, tc.newErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			n, err := v.copy(&out, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			err = v.check(n)
			if tc.checkErr == "" && err != nil || tc.checkErr != "" && (err == nil || !strings.Contains(err.Error(), tc.checkErr)) {
				t.Fatalf("check: %v, want %q", err, tc.checkErr)
			}
		})
	}
}
