package boxfiles_test

import (
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/relay/boxfiles"
	"github.com/keel-relay/keel/relay/nodecerts"
	"github.com/keel-relay/keel/relay/nodecerts/nodecertstest"
)

// relayd's shared-folder fixture: a file "123\n" and its SHA-256.
const (
	fixture       = "123\n"
	fixtureSHA256 = "181210f8f9c779c26da1d9b2075bde0127302ee0e3fca38c9a83f5b1dd8e5d3b"
)

// box is a served tree on disk, a plain-HTTP and a TLS server over it, and clients.
type box struct {
	dir                         string
	plain, tls                  *httptest.Server
	noCert, node1, node2, other *http.Client
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newBox(t *testing.T) *box {
	t.Helper()
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	write(t, filepath.Join(shared, "file"), fixture)
	write(t, filepath.Join(shared, "file with space"), fixture)
	write(t, filepath.Join(shared, "sub", "nested"), "nested\n")
	write(t, filepath.Join(dir, "secret"), "secret\n")
	write(t, filepath.Join(dir, "share", "node1", "rules.cf"), "node1 rules\n")
	write(t, filepath.Join(dir, "share", "node1", "sub", "x.cf"), "x\n")
	write(t, filepath.Join(dir, "share", "node2", "rules.cf"), "node2 rules\n")
	write(t, filepath.Join(dir, "share", "common", "promises.cf"), "common promises\n")
	for link, target := range map[string]string{
		filepath.Join(shared, "out"):                          "../secret",
		filepath.Join(shared, "abs"):                          filepath.Join(dir, "secret"),
		filepath.Join(shared, "outdir"):                       "..",
		filepath.Join(shared, "in"):                           "sub/nested",
		filepath.Join(dir, "share", "node1", "other"):         "../node2/rules.cf",
		filepath.Join(dir, "share", "common", "out"):          "../../secret",
		filepath.Join(dir, "share", "common", "node2-linked"): "../node2",
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	if err := mkfifo(filepath.Join(shared, "fifo")); err != nil {
		t.Fatal(err)
	}

	// The node certificates, as Rudder's nodescerts.pem.
	_, pem1, key1 := nodecertstest.Issue(t, "node1", "node1.example.com")
	_, pem2, key2 := nodecertstest.Issue(t, "node2", "node2.example.com")
	_, pemOther, keyOther := nodecertstest.Issue(t, "node1", "impostor.example.com")
	bundle := filepath.Join(dir, "nodescerts.pem")
	if err := os.WriteFile(bundle, nodecertstest.Bundle(pem1, pem2), 0o644); err != nil {
		t.Fatal(err)
	}
	holder := nodecerts.NewHolder(bundle, slog.New(slog.DiscardHandler))
	if n := holder.Current().Len(); n != 2 {
		t.Fatalf("%d node certificates loaded, want 2", n)
	}
	h := boxfiles.New(boxfiles.Options{
		NodeID:       "root-relay-1",
		SharedFolder: shared,
		Policies:     filepath.Join(dir, "share"),
		Common:       filepath.Join(dir, "share", "common"),
		ClientNode:   nodecerts.NodeID,
	})
	r := httprouter.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		r.Handle(m, "/uuid", h.UUID)
		r.Handle(m, "/rudder/relay-api/shared-folder/*path", h.SharedFolder)
		r.Handle(m, "/rudder/relay-api/1/shared-folder/*path", h.SharedFolder)
		r.Handle(m, "/policies/:uuid/*path", h.Policies)
		r.Handle(m, "/common/*path", h.Common)
	}
	b := &box{dir: dir, plain: httptest.NewServer(r), tls: httptest.NewUnstartedServer(r)}
	t.Cleanup(b.plain.Close)
	srvCert := serverCert(t)
	b.tls.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, MinVersion: tls.VersionTLS13}
	holder.ConfigureTLS(b.tls.TLS)
	b.tls.StartTLS()
	t.Cleanup(b.tls.Close)

	pool := x509.NewCertPool()
	pool.AddCert(srvCert.Leaf)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: certs},
		}}
	}
	b.noCert = client()
	b.node1 = client(nodecertstest.TLSCertificate(t, pem1, key1))
	b.node2 = client(nodecertstest.TLSCertificate(t, pem2, key2))
	b.other = client(nodecertstest.TLSCertificate(t, pemOther, keyOther))
	return b
}

// answer is what a test request got.
type answer struct {
	code int
	body string
	hdr  http.Header
}

// do sends method with rawPath (sent byte for byte, no client-side cleaning or escaping)
// to srv through c.
func do(t *testing.T, c *http.Client, srv *httptest.Server, method, rawPath string, hdr http.Header) answer {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := ""
	if i := strings.IndexByte(rawPath, '?'); i >= 0 {
		rawPath, q = rawPath[:i], rawPath[i+1:]
	}
	req := &http.Request{Method: method, URL: &url.URL{Scheme: u.Scheme, Host: u.Host, Opaque: "//" + u.Host + rawPath, RawQuery: q}, Header: http.Header{}, Host: u.Host}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawPath, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, rawPath, err)
	}
	return answer{resp.StatusCode, string(body), resp.Header}
}

func TestUUID(t *testing.T) {
	b := newBox(t)
	for _, c := range []struct {
		name string
		c    *http.Client
		srv  *httptest.Server
	}{{"plain", http.DefaultClient, b.plain}, {"TLS without certificate", b.noCert, b.tls}, {"TLS node1", b.node1, b.tls}} {
		a := do(t, c.c, c.srv, http.MethodGet, "/uuid", nil)
		if a.code != http.StatusOK || a.body != "root-relay-1" || !strings.HasPrefix(a.hdr.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: GET /uuid: %d %q %q", c.name, a.code, a.body, a.hdr.Get("Content-Type"))
		}
		if !regexp.MustCompile(`^[a-z0-9-]+$`).MatchString(a.body) {
			t.Errorf("%s: GET /uuid %q fails the agents' check", c.name, a.body)
		}
		a = do(t, c.c, c.srv, http.MethodHead, "/uuid", nil)
		if a.code != http.StatusOK || a.body != "" || a.hdr.Get("Content-Length") != "12" {
			t.Errorf("%s: HEAD /uuid: %d %q, Content-Length %q", c.name, a.code, a.body, a.hdr.Get("Content-Length"))
		}
	}
}

// Every SPEC case of GET shared-folder, and every traversal attempt: never a byte from
// outside the shared folder.
func TestSharedFolderGet(t *testing.T) {
	b := newBox(t)
	tests := []struct {
		path     string
		code     int
		body     string
		contains string
	}{
		{"file", http.StatusOK, fixture, ""},
		{"file%20with%20space", http.StatusOK, fixture, ""},
		{"sub/nested", http.StatusOK, "nested\n", ""},
		{"sub%2Fnested", http.StatusOK, "nested\n", ""}, // a decoded %2F separates like a slash
		{"./file", http.StatusOK, fixture, ""},
		{"sub//nested", http.StatusOK, "nested\n", ""},
		{"in", http.StatusOK, "nested\n", ""}, // a link inside the folder
		{"missing", http.StatusNotFound, "NOT FOUND", ""},
		{"sub", http.StatusNotFound, "NOT FOUND", ""},
		{"sub/", http.StatusNotFound, "NOT FOUND", ""},
		{"", http.StatusNotFound, "NOT FOUND", ""},
		{"file/", http.StatusNotFound, "NOT FOUND", ""},
		{"fifo", http.StatusNotFound, "NOT FOUND", ""},
		// Traversal.
		{"../secret", http.StatusBadRequest, "", "bad path"},
		{"sub/../../secret", http.StatusBadRequest, "", "bad path"},
		{"%2e%2e/secret", http.StatusBadRequest, "", "bad path"},
		{"%2E%2E%2Fsecret", http.StatusBadRequest, "", "bad path"},
		{"sub/..%2F..%2Fsecret", http.StatusBadRequest, "", "bad path"},
		{"..%5Csecret", http.StatusBadRequest, "", "bad path"},
		{"sub%5C..%5C..%5Csecret", http.StatusBadRequest, "", "bad path"},
		{"sub\\nested", http.StatusBadRequest, "", "bad path"},
		{"...", http.StatusBadRequest, "", "bad path"},
		{"file%00", http.StatusBadRequest, "", "bad path"},
		{"out", http.StatusNotFound, "NOT FOUND", ""},
		{"abs", http.StatusNotFound, "NOT FOUND", ""},
		{"outdir/secret", http.StatusNotFound, "NOT FOUND", ""},
		{"/" + strings.TrimPrefix(filepath.Join(b.dir, "secret"), "/"), http.StatusNotFound, "NOT FOUND", ""},
		{"%2F" + url.PathEscape(filepath.Join(b.dir, "secret")), http.StatusNotFound, "NOT FOUND", ""},
	}
	for _, prefix := range []string{"/rudder/relay-api/shared-folder/", "/rudder/relay-api/1/shared-folder/"} {
		for _, tt := range tests {
			a := do(t, http.DefaultClient, b.plain, http.MethodGet, prefix+tt.path, nil)
			if a.code != tt.code || (tt.contains == "" && a.body != tt.body) || !strings.Contains(a.body, tt.contains) {
				t.Errorf("GET %s%s: %d %q, want %d %q", prefix, tt.path, a.code, a.body, tt.code, tt.body+tt.contains)
			}
			if strings.Contains(a.body, "secret") && !strings.Contains(a.body, "bad path") {
				t.Errorf("GET %s%s served a file from outside the shared folder", prefix, tt.path)
			}
			if a.code == http.StatusOK && a.hdr.Get("Content-Length") != "" && a.hdr.Get("Content-Length") != strconv.Itoa(len(tt.body)) {
				t.Errorf("GET %s%s: Content-Length %s", prefix, tt.path, a.hdr.Get("Content-Length"))
			}
		}
	}
}

// The HEAD hash check of the SPEC, with sha256 (also as the default) and sha512, either case.
func TestSharedFolderHead(t *testing.T) {
	b := newBox(t)
	s512 := sha512.Sum512([]byte(fixture))
	sha512Hex := hex.EncodeToString(s512[:])
	other256 := strings.Repeat("0", 64)
	tests := []struct {
		path string
		code int
	}{
		{"file", http.StatusOK},
		{"file?hash=", http.StatusOK},
		{"file?hash=&hash_type=md5", http.StatusOK}, // no hash: the type is not looked at
		{"file?hash=" + fixtureSHA256, http.StatusNotModified},
		{"file%20with%20space?hash=" + fixtureSHA256, http.StatusNotModified},
		{"file?hash=" + fixtureSHA256 + "&hash_type=sha256", http.StatusNotModified},
		{"file?hash=" + fixtureSHA256 + "&hash_type=", http.StatusNotModified},
		{"file?hash=" + strings.ToUpper(fixtureSHA256), http.StatusNotModified},
		{"file?hash=" + sha512Hex + "&hash_type=sha512", http.StatusNotModified},
		{"file?hash=" + strings.ToUpper(sha512Hex) + "&hash_type=SHA512", http.StatusNotModified},
		{"file?hash=" + other256, http.StatusOK},
		{"file?hash=" + strings.Repeat("0", 128) + "&hash_type=sha512", http.StatusOK},
		{"file?hash=" + fixtureSHA256 + "&hash_type=sha512", http.StatusBadRequest}, // wrong length
		{"file?hash=" + sha512Hex, http.StatusBadRequest},
		{"file?hash=" + fixtureSHA256 + "&hash_type=md5", http.StatusBadRequest},
		{"file?hash=" + strings.Repeat("z", 64), http.StatusBadRequest},
		{"file?hash=abc", http.StatusBadRequest},
		{"missing", http.StatusNotFound},
		{"missing?hash=" + fixtureSHA256, http.StatusNotFound},
		{"missing?hash=zz", http.StatusNotFound},
		{"sub?hash=" + fixtureSHA256, http.StatusNotFound},
		{"out?hash=" + fixtureSHA256, http.StatusNotFound},
		{"../secret?hash=" + fixtureSHA256, http.StatusBadRequest},
		{"%2e%2e/secret", http.StatusBadRequest},
	}
	for _, tt := range tests {
		a := do(t, http.DefaultClient, b.plain, http.MethodHead, "/rudder/relay-api/1/shared-folder/"+tt.path, nil)
		if a.code != tt.code || a.body != "" {
			t.Errorf("HEAD %s: %d %q, want %d and no body", tt.path, a.code, a.body, tt.code)
		}
	}
}

// On the TLS listener the shared folder wants a node certificate; a certificate that is not
// one of nodescerts.pem (here one naming node1 too) does not get through the handshake.
func TestSharedFolderCertificates(t *testing.T) {
	b := newBox(t)
	const path = "/rudder/relay-api/shared-folder/file"
	for _, tt := range []struct {
		name string
		c    *http.Client
		code int
	}{{"no certificate", b.noCert, http.StatusForbidden}, {"node1", b.node1, http.StatusOK}, {"node2", b.node2, http.StatusOK}} {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			if a := do(t, tt.c, b.tls, m, path, nil); a.code != tt.code {
				t.Errorf("%s %s over TLS with %s: %d %q, want %d", m, path, tt.name, a.code, a.body, tt.code)
			}
		}
	}
	if a := do(t, http.DefaultClient, b.plain, http.MethodGet, path, nil); a.code != http.StatusOK {
		t.Errorf("GET %s over plain HTTP: %d, want 200 (no certificate asked)", path, a.code)
	}
	req, _ := http.NewRequest(http.MethodGet, b.tls.URL+path, nil)
	if resp, err := b.other.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("a certificate that is no node's: %d, want the handshake refused", resp.StatusCode)
	}
}

func TestPolicies(t *testing.T) {
	b := newBox(t)
	tests := []struct {
		name string
		c    *http.Client
		srv  *httptest.Server
		path string
		code int
		body string
	}{
		{"own policies", b.node1, b.tls, "/policies/node1/rules.cf", http.StatusOK, "node1 rules\n"},
		{"own policies nested", b.node1, b.tls, "/policies/node1/sub/x.cf", http.StatusOK, "x\n"},
		{"own policies, doubled slash", b.node1, b.tls, "/policies/node1//rules.cf", http.StatusOK, "node1 rules\n"},
		{"another node's", b.node2, b.tls, "/policies/node1/rules.cf", http.StatusForbidden, ""},
		{"unknown node", b.node2, b.tls, "/policies/node3/rules.cf", http.StatusForbidden, ""},
		{"no certificate", b.noCert, b.tls, "/policies/node1/rules.cf", http.StatusForbidden, ""},
		{"plain HTTP", http.DefaultClient, b.plain, "/policies/node1/rules.cf", http.StatusForbidden, ""},
		{"missing", b.node1, b.tls, "/policies/node1/missing", http.StatusNotFound, ""},
		{"directory", b.node1, b.tls, "/policies/node1/sub", http.StatusNotFound, ""},
		{"directory slash", b.node1, b.tls, "/policies/node1/", http.StatusNotFound, ""},
		{"dot dot", b.node1, b.tls, "/policies/node1/../node2/rules.cf", http.StatusBadRequest, ""},
		{"encoded dot dot", b.node1, b.tls, "/policies/node1/%2e%2e/node2/rules.cf", http.StatusBadRequest, ""},
		{"encoded slash dot dot", b.node1, b.tls, "/policies/node1/sub%2F..%2F..%2Fnode2%2Frules.cf", http.StatusBadRequest, ""},
		{"backslash", b.node1, b.tls, "/policies/node1/..%5Cnode2%5Crules.cf", http.StatusBadRequest, ""},
		{"dot dot as the node", b.node1, b.tls, "/policies/../node2/rules.cf", http.StatusForbidden, ""},
		{"link to another node's", b.node1, b.tls, "/policies/node1/other", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		a := do(t, tt.c, tt.srv, http.MethodGet, tt.path, nil)
		if a.code != tt.code || (tt.body != "" && a.body != tt.body) {
			t.Errorf("%s: GET %s: %d %q, want %d %q", tt.name, tt.path, a.code, a.body, tt.code, tt.body)
		}
	}
}

func TestCommon(t *testing.T) {
	b := newBox(t)
	tests := []struct {
		c    *http.Client
		srv  *httptest.Server
		path string
		code int
		body string
	}{
		{http.DefaultClient, b.plain, "/common/promises.cf", http.StatusOK, "common promises\n"},
		{b.noCert, b.tls, "/common/promises.cf", http.StatusOK, "common promises\n"},
		{b.node2, b.tls, "/common/promises.cf", http.StatusOK, "common promises\n"},
		{http.DefaultClient, b.plain, "/common/", http.StatusNotFound, ""},
		{http.DefaultClient, b.plain, "/common/missing", http.StatusNotFound, ""},
		{http.DefaultClient, b.plain, "/common/out", http.StatusNotFound, ""},
		{http.DefaultClient, b.plain, "/common/node2-linked/rules.cf", http.StatusNotFound, ""},
		{http.DefaultClient, b.plain, "/common/../node1/rules.cf", http.StatusBadRequest, ""},
		{http.DefaultClient, b.plain, "/common/%2e%2e/node1/rules.cf", http.StatusBadRequest, ""},
		{http.DefaultClient, b.plain, "/common/..%5Cnode1", http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		a := do(t, tt.c, tt.srv, http.MethodGet, tt.path, nil)
		if a.code != tt.code || (tt.body != "" && a.body != tt.body) {
			t.Errorf("GET %s: %d %q, want %d %q", tt.path, a.code, a.body, tt.code, tt.body)
		}
		if strings.Contains(a.body, "node1 rules") || strings.Contains(a.body, "node2 rules") {
			t.Errorf("GET %s served a node's policies", tt.path)
		}
	}
}

// ETag and If-None-Match (304) on /policies/ and /common/, HEAD included; a rewritten file,
// even of the same size, gets a new ETag.
func TestPoliciesETag(t *testing.T) {
	b := newBox(t)
	for _, tt := range []struct {
		c    *http.Client
		srv  *httptest.Server
		path string
		file string
	}{
		{b.node1, b.tls, "/policies/node1/rules.cf", filepath.Join(b.dir, "share", "node1", "rules.cf")},
		{http.DefaultClient, b.plain, "/common/promises.cf", filepath.Join(b.dir, "share", "common", "promises.cf")},
	} {
		a := do(t, tt.c, tt.srv, http.MethodGet, tt.path, nil)
		etag := a.hdr.Get("ETag")
		if a.code != http.StatusOK || !regexp.MustCompile(`^"[0-9a-f]+-[0-9a-f]+"$`).MatchString(etag) {
			t.Fatalf("GET %s: %d, ETag %q", tt.path, a.code, etag)
		}
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			a = do(t, tt.c, tt.srv, m, tt.path, http.Header{"If-None-Match": {etag}})
			if a.code != http.StatusNotModified || a.body != "" || a.hdr.Get("ETag") != etag {
				t.Errorf("%s %s If-None-Match %s: %d %q ETag %q, want 304", m, tt.path, etag, a.code, a.body, a.hdr.Get("ETag"))
			}
		}
		a = do(t, tt.c, tt.srv, http.MethodGet, tt.path, http.Header{"If-None-Match": {`"other"`}})
		if a.code != http.StatusOK {
			t.Errorf("GET %s with another ETag: %d, want 200", tt.path, a.code)
		}
		a = do(t, tt.c, tt.srv, http.MethodGet, tt.path, http.Header{"Range": {"bytes=0-3"}})
		if a.code != http.StatusPartialContent || len(a.body) != 4 {
			t.Errorf("GET %s bytes 0-3: %d %q, want 206 and 4 bytes", tt.path, a.code, a.body)
		}

		// Rewritten, same size: a new modification time, a new ETag.
		old, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		write(t, tt.file, strings.ToUpper(string(old)))
		later := time.Now().Add(time.Minute)
		if err := os.Chtimes(tt.file, later, later); err != nil {
			t.Fatal(err)
		}
		a = do(t, tt.c, tt.srv, http.MethodGet, tt.path, http.Header{"If-None-Match": {etag}})
		if a.code != http.StatusOK || a.body != strings.ToUpper(string(old)) || a.hdr.Get("ETag") == etag {
			t.Errorf("GET %s after a rewrite, old ETag: %d %q ETag %q, want 200, the new content and a new ETag", tt.path, a.code, a.body, a.hdr.Get("ETag"))
		}
	}
}

// BenchmarkSharedFolderHeadHash: a HEAD with a hash of a 16 MiB file, over loopback; the
// file is hashed as it is read (allocations do not grow with it).
func BenchmarkSharedFolderHeadHash(b *testing.B) {
	benchBox(b, 16<<20, func(c *http.Client, url string) int {
		req, _ := http.NewRequest(http.MethodHead, url+"?hash="+strings.Repeat("0", 64), nil)
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}, http.StatusOK)
}

// BenchmarkSharedFolderGet: a GET of a 16 MiB file, over loopback.
func BenchmarkSharedFolderGet(b *testing.B) {
	benchBox(b, 16<<20, func(c *http.Client, url string) int {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != 16<<20 {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		return resp.StatusCode
	}, http.StatusOK)
}

func benchBox(b *testing.B, size int, call func(*http.Client, string) int, want int) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, size), 0o644); err != nil {
		b.Fatal(err)
	}
	h := boxfiles.New(boxfiles.Options{SharedFolder: dir})
	r := httprouter.New()
	r.Handle(http.MethodGet, "/rudder/relay-api/1/shared-folder/*path", h.SharedFolder)
	r.Handle(http.MethodHead, "/rudder/relay-api/1/shared-folder/*path", h.SharedFolder)
	srv := httptest.NewServer(r)
	defer srv.Close()
	c := srv.Client()
	url := srv.URL + "/rudder/relay-api/1/shared-folder/big"
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if code := call(c, url); code != want {
			b.Fatalf("%d, want %d", code, want)
		}
	}
}

// A file the relay may not read answers 403 (and is logged), not 404.
func TestUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file")
	}
	b := newBox(t)
	if err := os.Chmod(filepath.Join(b.dir, "shared", "file"), 0); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		if a := do(t, http.DefaultClient, b.plain, m, "/rudder/relay-api/shared-folder/file", nil); a.code != http.StatusForbidden {
			t.Errorf("%s of an unreadable file: %d %q, want 403", m, a.code, a.body)
		}
	}
}
