package reqauth

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/keyhash"
)

const (
	node = "e745a140-40bc-4b86-b6dc-084488fc906b"
	path = "/rudder/relay-api/1/shared-files/" + node + "/root/file-1.txt"
)

var now = time.Unix(1_700_000_000, 0)

// loadKey reads an RSA private key PEM made by "openssl genrsa".
func loadKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", name)
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return k.(*rsa.PrivateKey)
}

// pins returns a pin lookup knowing node (with the openssl-computed pin of
// key.pem) and "nokey" (without a pin).
func pins(t testing.TB) func(string) (keyhash.Pin, bool) {
	t.Helper()
	b, err := os.ReadFile("testdata/key.pin")
	if err != nil {
		t.Fatal(err)
	}
	p, err := keyhash.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return func(id string) (keyhash.Pin, bool) {
		if id == node || id == "node2" {
			return p, true
		}
		return keyhash.Pin{}, false
	}
}

func signedRequest(t testing.TB, method, url, id string, key *rsa.PrivateKey, at time.Time) *http.Request {
	t.Helper()
	req := httptest.NewRequest(method, url, nil)
	if err := Sign(req, id, key, at); err != nil {
		t.Fatal(err)
	}
	return req
}

func pubkeyHeader(pub *rsa.PublicKey) string {
	return base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(pub))
}

// TestOverHTTP signs a client request and verifies it as a server sees it.
func TestOverHTTP(t *testing.T) {
	key := loadKey(t, "key.pem")
	pin := pins(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := Verify(r, pin, time.Now(), 0)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		io.WriteString(w, id)
	}))
	defer srv.Close()
	for _, tt := range []struct {
		id, url string
		key     *rsa.PrivateKey
		status  int
		body    string
	}{
		{node, srv.URL + path + "?hash=abc&x=%2F", key, 200, node},
		{node, srv.URL + "/a%20b/c", key, 200, node},
		{"nokey", srv.URL + path, key, 403, `node "nokey" is unknown or has no key hash` + "\n"},
		{node, srv.URL + path, loadKey(t, "other.pem"), 403, `header Keel-Pubkey is not the key of node "` + node + `" (it does not match the node's key hash)` + "\n"},
	} {
		req, err := http.NewRequest("GET", tt.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := Sign(req, tt.id, tt.key, time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || string(body) != tt.body {
			t.Errorf("GET %s as %s: %d %q, want %d %q", tt.url, tt.id, resp.StatusCode, body, tt.status, tt.body)
		}
	}
}

func TestVerify(t *testing.T) {
	key := loadKey(t, "key.pem")
	pin := pins(t)
	for _, tt := range []struct {
		name   string
		method string
		url    string
		at     time.Time
		window time.Duration
	}{
		{"GET", "GET", path, now, 0},
		{"query ignored", "GET", path + "?hash=0a", now, 0},
		{"HEAD", "HEAD", path, now, 0},
		{"just within default window, past", "GET", path, now.Add(-DefaultWindow), 0},
		{"just within default window, future", "GET", path, now.Add(DefaultWindow), 0},
		{"wider window", "GET", path, now.Add(-time.Hour), time.Hour},
	} {
		req := signedRequest(t, tt.method, tt.url, node, key, tt.at)
		id, err := Verify(req, pin, now, tt.window)
		if err != nil || id != node {
			t.Errorf("%s: Verify = %q, %v", tt.name, id, err)
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	key := loadKey(t, "key.pem")
	other := loadKey(t, "other.pem")
	pin := pins(t)
	small := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 511), E: 65537}
	pkix, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	otherSig := signedRequest(t, "GET", path, node, other, now).Header.Get(HeaderSignature)
	goodHex := strings.TrimPrefix(signedRequest(t, "GET", path, node, key, now).Header.Get(HeaderSignature), "sha256:")
	set := func(name, value string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set(name, value) }
	}
	tests := []struct {
		name   string
		mutate func(*http.Request)
		now    time.Time
		want   string
	}{
		{"no Keel-Node", func(r *http.Request) { r.Header.Del(HeaderNode) }, now, "missing header Keel-Node (requests must be signed by the target node)"},
		{"no Keel-Date", func(r *http.Request) { r.Header.Del(HeaderDate) }, now, "missing header Keel-Date (requests must be signed by the target node)"},
		{"no Keel-Pubkey", func(r *http.Request) { r.Header.Del(HeaderPubkey) }, now, "missing header Keel-Pubkey (requests must be signed by the target node)"},
		{"no Keel-Signature", func(r *http.Request) { r.Header.Del(HeaderSignature) }, now, "missing header Keel-Signature (requests must be signed by the target node)"},
		{"two Keel-Node", func(r *http.Request) { r.Header.Add(HeaderNode, "root") }, now, "header Keel-Node given 2 times"},
		{"bad node id", set(HeaderNode, "../x"), now, `header Keel-Node: invalid node id "../x": must be 1 to 255 characters among A-Z a-z 0-9 _ . - and not "." or ".."`},
		{"empty date", set(HeaderDate, ""), now, `header Keel-Date "" is not a time in unix seconds`},
		{"date not a number", set(HeaderDate, "yesterday"), now, `header Keel-Date "yesterday" is not a time in unix seconds`},
		{"signed date", set(HeaderDate, "+1700000000"), now, `header Keel-Date "+1700000000" is not a time in unix seconds`},
		{"negative date", set(HeaderDate, "-1"), now, `header Keel-Date "-1" is not a time in unix seconds`},
		{"float date", set(HeaderDate, "1700000000.5"), now, `header Keel-Date "1700000000.5" is not a time in unix seconds`},
		{"huge date", set(HeaderDate, strings.Repeat("9", 50)), now, `header Keel-Date "9999999999999999999999999999999999999999..." is not a time in unix seconds`},
		{"too old", nil, now.Add(DefaultWindow + time.Second), "header Keel-Date 1700000000 is 5m1s away from the relay's clock (2023-11-14T22:18:21Z), more than 5m0s"},
		{"too new", nil, now.Add(-DefaultWindow - time.Second), "header Keel-Date 1700000000 is 5m1s away from the relay's clock (2023-11-14T22:08:19Z), more than 5m0s"},
		{"far future", set(HeaderDate, "999999999999999999"), now, "header Keel-Date 999999999999999999 is 2562047h47m16s away from the relay's clock (2023-11-14T22:13:20Z), more than 5m0s"},
		{"unknown node", set(HeaderNode, "node9"), now, `node "node9" is unknown or has no key hash`},
		{"node without key", set(HeaderNode, "nokey"), now, `node "nokey" is unknown or has no key hash`},
		{"pubkey not base64", set(HeaderPubkey, "MIIB!"), now, "header Keel-Pubkey is not base64: illegal base64 data at input byte 4"},
		{"pubkey PKIX", set(HeaderPubkey, base64.StdEncoding.EncodeToString(pkix)), now, "header Keel-Pubkey is not a PKCS#1 RSA public key: x509: failed to parse public key (use ParsePKIXPublicKey instead for this key format)"},
		{"pubkey too small", set(HeaderPubkey, pubkeyHeader(small)), now, "header Keel-Pubkey: 512-bit RSA key, want 1024 to 8192 bits"},
		{"pubkey of another key", set(HeaderPubkey, pubkeyHeader(&other.PublicKey)), now, `header Keel-Pubkey is not the key of node "` + node + `" (it does not match the node's key hash)`},
		{"signature without algorithm", func(r *http.Request) {
			r.Header.Set(HeaderSignature, strings.TrimPrefix(r.Header.Get(HeaderSignature), "sha256:"))
		}, now, `header Keel-Signature "` + goodHex[:40] + `..." does not start with "sha256:"`},
		{"signature sha512", set(HeaderSignature, "sha512:00"), now, `header Keel-Signature "sha512:00" does not start with "sha256:"`},
		{"signature bad hex", set(HeaderSignature, "sha256:zz"), now, `header Keel-Signature "sha256:zz" is not sha256:<hex>`},
		{"signature empty", set(HeaderSignature, "sha256:"), now, `header Keel-Signature "sha256:" is not sha256:<hex>`},
		{"signature by another key", set(HeaderSignature, otherSig), now, `header Keel-Signature: signature of GET ` + path + ` by node "` + node + `" does not verify`},
		{"other node with the same pin", set(HeaderNode, "node2"), now, `header Keel-Signature: signature of GET ` + path + ` by node "node2" does not verify`},
		{"date changed", set(HeaderDate, "1700000001"), now, `header Keel-Signature: signature of GET ` + path + ` by node "` + node + `" does not verify`},
		{"method changed", func(r *http.Request) { r.Method = "DELETE" }, now, `header Keel-Signature: signature of DELETE ` + path + ` by node "` + node + `" does not verify`},
		{"path changed", func(r *http.Request) { r.URL.Path += "x" }, now, `header Keel-Signature: signature of GET ` + path + `x by node "` + node + `" does not verify`},
	}
	for _, tt := range tests {
		req := signedRequest(t, "GET", path+"?hash=1", node, key, now)
		if tt.mutate != nil {
			tt.mutate(req)
		}
		id, err := Verify(req, pin, tt.now, DefaultWindow)
		if err == nil {
			t.Errorf("%s: Verify succeeded as %q", tt.name, id)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("%s: error\n got: %s\nwant: %s", tt.name, err, tt.want)
		}
	}
}

func TestSignBad(t *testing.T) {
	key := loadKey(t, "key.pem")
	req := httptest.NewRequest("GET", path, nil)
	if err := Sign(req, "a b", key, now); err == nil || !strings.Contains(err.Error(), `invalid node id "a b"`) {
		t.Errorf("Sign(bad node id) = %v", err)
	}
	if err := Sign(req, node, nil, now); err == nil {
		t.Error("Sign(nil key) succeeded")
	}
	if len(req.Header) != 0 {
		t.Errorf("failed Sign set headers: %v", req.Header)
	}
}

func FuzzHeaders(f *testing.F) {
	key := loadKey(f, "key.pem")
	pin := pins(f)
	good := signedRequest(f, "GET", path, node, key, now).Header
	f.Add(good.Get(HeaderNode), good.Get(HeaderDate), good.Get(HeaderPubkey), good.Get(HeaderSignature))
	f.Add("node2", "1700000000", good.Get(HeaderPubkey), "sha256:00")
	f.Add("", "", "", "")
	f.Add("..", "-1", "MIIB", "sha256:zz")
	f.Add(node, "+1700000000", pubkeyHeader(&loadKey(f, "other.pem").PublicKey), "sha512:")
	f.Fuzz(func(t *testing.T, n, date, pub, sig string) {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set(HeaderNode, n)
		req.Header.Set(HeaderDate, date)
		req.Header.Set(HeaderPubkey, pub)
		req.Header.Set(HeaderSignature, sig)
		id, err := Verify(req, pin, now, 0)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		// Only the genuine signature passes (the signed fields exactly; the
		// encodings of key and signature may vary, e.g. hex case).
		if id != node || n != node || date != good.Get(HeaderDate) ||
			!strings.EqualFold(sig, good.Get(HeaderSignature)) {
			t.Fatalf("Verify accepted node %q date %q sig %q", n, date, sig)
		}
	})
}
