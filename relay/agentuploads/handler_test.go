package agentuploads

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/internal/htpasswd"
	"github.com/keel-relay/keel/internal/membudget"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/uploadname"
	"github.com/keel-relay/keel/relay/uploadslots"
	"github.com/keel-relay/keel/storage"
)

// Credentials of the test htpasswd files.
const (
	initialUser, initialPass   = "rudder", "rudder"
	acceptedUser, acceptedPass = "node-agent", "s3cret-of-the-policy"
	testMaxBody                = 64 << 10
)

// A report name as agents send it, and an inventory pair.
const (
	reportName = "2026-12-03T10:00:00+00:00@5d1b6cd2-2b0f-4ee9-9c5b-4e0e4f7fd2a1.log.gz"
	invGz      = "5d1b6cd2-2b0f-4ee9-9c5b-4e0e4f7fd2a1_2026-12-03T10:00:00+00:00.ocs.gz"
	invSign    = "5d1b6cd2-2b0f-4ee9-9c5b-4e0e4f7fd2a1_2026-12-03T10:00:00+00:00.ocs.sign"
)

// shaEntry is an htpasswd line of the {SHA} scheme (cheap to check: tests need not pay
// bcrypt's cost; htpasswd's own tests cover the schemes).
func shaEntry(user, password string) string {
	sum := sha1.Sum([]byte(password))
	return user + ":{SHA}" + base64.StdEncoding.EncodeToString(sum[:]) + "\n"
}

// kit is a handler over a real store (or a root_dir), served on loopback.
type kit struct {
	h       *Handler
	store   *storage.Store // nil at the root
	rootDir string
	reg     *metrics.Registry
	pool    *uploadslots.Pool
	srv     *httptest.Server
	stored  chan struct{}
}

type kitOptions struct {
	root       bool
	storeOpts  func(*storage.Options)
	clientNode func(*http.Request) (string, bool)
	idle       time.Duration
	minRate    int64
	slots      int
	slotWait   time.Duration
	tls        func(*httptest.Server)
	pressure   membudget.Pressure
}

func newKit(t testing.TB, ko kitOptions) *kit {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	initial, accepted := filepath.Join(dir, "htpasswd-webdav-initial"), filepath.Join(dir, "htpasswd-webdav")
	if err := os.WriteFile(initial, []byte(shaEntry(initialUser, initialPass)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(accepted, []byte(shaEntry(acceptedUser, acceptedPass)), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &kit{reg: metrics.NewRegistry(), stored: make(chan struct{}, 100)}
	k.pool = uploadslots.New(uploadslots.Options{Slots: max(ko.slots, 1), PerClient: max(ko.slots, 1), Pressure: ko.pressure})
	opts := Options{
		Initial: htpasswd.NewWatched(initial, log), Accepted: htpasswd.NewWatched(accepted, log),
		ClientNode: ko.clientNode, MaxBody: func() int64 { return testMaxBody },
		BodyIdleTimeout: ko.idle, MinUploadRate: ko.minRate, Slots: k.pool, UploadSlotWait: ko.slotWait,
		Metrics: k.reg,
	}
	if ko.root {
		k.rootDir = filepath.Join(dir, "root")
		if err := os.Mkdir(k.rootDir, 0o755); err != nil {
			t.Fatal(err)
		}
		opts.RootDir = k.rootDir
	} else {
		so := storage.DefaultOptions(filepath.Join(dir, "data"))
		if ko.storeOpts != nil {
			ko.storeOpts(&so)
		}
		var err error
		if k.store, err = storage.Open(so, log); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if k.store != nil {
				_ = k.store.Close()
			}
		})
		opts.Store, opts.Stored = k.store, func() { k.stored <- struct{}{} }
	}
	k.h = New(opts, log)
	r := httprouter.New()
	r.RedirectTrailingSlash, r.RedirectFixedPath = false, false
	for _, kind := range uploadname.Kinds {
		r.PUT("/"+kind.Dir()+"/*name", k.h.Put(kind))
		for _, m := range DeniedMethods() {
			r.Handle(m, "/"+kind.Dir()+"/*name", k.h.Deny(kind))
		}
	}
	if ko.tls != nil {
		k.srv = httptest.NewUnstartedServer(r)
		ko.tls(k.srv)
		k.srv.StartTLS()
	} else {
		k.srv = httptest.NewServer(r)
	}
	t.Cleanup(k.srv.Close)
	return k
}

// put sends a PUT of body to path with Basic credentials (user "" = none) and returns the
// answer (its body read).
func (k *kit) put(t testing.TB, path, user, pass string, body []byte) *http.Response {
	t.Helper()
	return k.do(t, http.MethodPut, path, user, pass, body)
}

func (k *kit) do(t testing.TB, method, path, user, pass string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, k.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := k.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

// kept returns what the store keeps of kind, by name.
func (k *kit) kept(t testing.TB, kind uploadname.Kind) map[string][]byte {
	t.Helper()
	return keptIn(t, k.store, kind)
}

func keptIn(t testing.TB, s *storage.Store, kind uploadname.Kind) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	var uploads []storage.AgentUpload
	if err := s.AgentUploads(kind.Dir(), false, func(a storage.AgentUpload) bool { uploads = append(uploads, a); return true }); err != nil {
		t.Fatal(err)
	}
	for _, a := range uploads {
		rc, err := s.OpenAgentUpload(a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if a.Size != int64(len(b)) {
			t.Errorf("%s: size %d, content %d bytes", a.Name, a.Size, len(b))
		}
		got[a.Name] = b
	}
	return got
}

// counted returns keel_agent_uploads_received_total{kind,result}.
func (k *kit) counted(kind uploadname.Kind, result string) float64 {
	var b bytes.Buffer
	_ = k.reg.WriteText(&b)
	want := fmt.Sprintf(`keel_agent_uploads_received_total{kind="%s",result="%s"} `, kind.Dir(), result)
	for line := range strings.Lines(b.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), want); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

func TestRefusals(t *testing.T) {
	k := newKit(t, kitOptions{})
	body := []byte("report bytes")
	long := strings.Repeat("a", uploadname.MaxNameLen+1)
	for _, tc := range []struct {
		name       string
		method     string
		path       string
		user, pass string
		body       []byte
		code       int
		result     string
	}{
		{"no credentials", "PUT", "/reports/" + reportName, "", "", body, 401, resultUnauthorized},
		{"wrong password", "PUT", "/reports/" + reportName, acceptedUser, "nope", body, 401, resultUnauthorized},
		{"unknown user", "PUT", "/inventory-updates/" + invGz, "nobody", acceptedPass, body, 401, resultUnauthorized},
		{"initial credentials on reports", "PUT", "/reports/" + reportName, initialUser, initialPass, body, 401, resultUnauthorized},
		{"initial credentials on inventory updates", "PUT", "/inventory-updates/" + invGz, initialUser, initialPass, body, 401, resultUnauthorized},
		{"accepted credentials on first inventories", "PUT", "/inventories/" + invGz, acceptedUser, acceptedPass, body, 401, resultUnauthorized},
		{"name with a slash", "PUT", "/reports/a/" + reportName, acceptedUser, acceptedPass, body, 400, resultBadName},
		{"name with a trailing slash", "PUT", "/reports/" + reportName + "/", acceptedUser, acceptedPass, body, 400, resultBadName},
		{"empty name", "PUT", "/reports/", acceptedUser, acceptedPass, body, 400, resultBadName},
		{"dot", "PUT", "/reports/.", acceptedUser, acceptedPass, body, 400, resultBadName},
		{"dot dot", "PUT", "/inventories/..", initialUser, initialPass, body, 400, resultBadName},
		{"dot dot then more", "PUT", "/reports/../etc", acceptedUser, acceptedPass, body, 400, resultBadName},
		{"name too long", "PUT", "/reports/" + long, acceptedUser, acceptedPass, body, 400, resultBadName},
		{"control byte", "PUT", "/reports/a%01b.log", acceptedUser, acceptedPass, body, 400, resultBadName},
		{"too large", "PUT", "/reports/" + reportName, acceptedUser, acceptedPass, make([]byte, testMaxBody+1), 413, resultTooLarge},
		{"GET", "GET", "/reports/" + reportName, acceptedUser, acceptedPass, nil, 403, resultDenied},
		{"DELETE", "DELETE", "/inventories/" + invGz, initialUser, initialPass, nil, 403, resultDenied},
		{"POST", "POST", "/reports/" + reportName, acceptedUser, acceptedPass, body, 403, resultDenied},
		{"PROPFIND", "PROPFIND", "/reports/" + reportName, acceptedUser, acceptedPass, nil, 403, resultDenied},
		{"MKCOL", "MKCOL", "/inventory-updates/x", acceptedUser, acceptedPass, nil, 403, resultDenied},
		{"MOVE", "MOVE", "/reports/" + reportName, "", "", nil, 403, resultDenied},
		{"OPTIONS", "OPTIONS", "/reports/" + reportName, "", "", nil, 403, resultDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, _ := uploadname.ParseKind(strings.Split(tc.path, "/")[1])
			before := k.counted(kind, tc.result)
			resp := k.do(t, tc.method, tc.path, tc.user, tc.pass, tc.body)
			if resp.StatusCode != tc.code {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("%s %s: %d %q, want %d", tc.method, tc.path, resp.StatusCode, b, tc.code)
			}
			if tc.code == 401 {
				if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="WebDAV Storage"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
			}
			if got := k.counted(kind, tc.result); got != before+1 {
				t.Errorf("%s counted %v times, want %v", tc.result, got, before+1)
			}
		})
	}
	if st := k.store.AgentUploadStats(); st.Waiting != 0 || st.Failed != 0 {
		t.Errorf("refused uploads were kept: %+v", st)
	}
}

// TestTooLargeStream: a body with no Content-Length that goes past http.max_body is cut
// with 413, and nothing is kept.
func TestTooLargeStream(t *testing.T) {
	k := newKit(t, kitOptions{})
	pr, pw := io.Pipe()
	go func() {
		chunk := make([]byte, 4096)
		for range testMaxBody/len(chunk) + 2 {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPut, k.srv.URL+"/reports/"+reportName, pr)
	req.SetBasicAuth(acceptedUser, acceptedPass)
	resp, err := k.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	pr.CloseWithError(io.ErrClosedPipe)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	if st := k.store.AgentUploadStats(); st.Waiting != 0 {
		t.Errorf("kept %+v", st)
	}
	if got := k.counted(uploadname.Report, resultTooLarge); got != 1 {
		t.Errorf("too_large counted %v", got)
	}
}

// TestSlowBody: a client that stops sending is cut (408) after body_idle_timeout, and one
// that trickles below min_upload_rate is cut too; nothing is kept, and the slot is free.
func TestSlowBody(t *testing.T) {
	k := newKit(t, kitOptions{idle: 300 * time.Millisecond, minRate: 1000})
	auth := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(acceptedUser+":"+acceptedPass)) + "\r\n"
	for _, tc := range []struct {
		name  string
		piece int
		pace  time.Duration
	}{
		{"stalled", 0, 0},                       // sends 10 bytes, then nothing
		{"trickle", 10, 100 * time.Millisecond}, // 100 bytes/s, below 1000
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", k.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "PUT /reports/%s HTTP/1.1\r\nHost: relay\r\n%sContent-Length: 60000\r\n\r\n0123456789", reportName, auth)
			done := make(chan struct{})
			defer close(done)
			if tc.piece > 0 {
				go func() {
					for {
						select {
						case <-done:
							return
						case <-time.After(tc.pace):
						}
						if _, err := c.Write(make([]byte, tc.piece)); err != nil {
							return
						}
					}
				}()
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Fatalf("status %d, want 408", resp.StatusCode)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("cut after %s", took)
			}
		})
	}
	if st := k.store.AgentUploadStats(); st.Waiting != 0 {
		t.Errorf("kept %+v", st)
	}
	if held, _ := k.pool.InUse(); held != 0 {
		t.Errorf("%d slots still held", held)
	}
	if got := k.counted(uploadname.Report, resultCut); got != 2 {
		t.Errorf("cut counted %v, want 2", got)
	}
}

// TestRefusalAnswersAtOnce: a refusal before the body is read (401 here) is answered at
// once, even though the client declared a body it does not send, and the connection is
// closed drainGrace later.
func TestRefusalAnswersAtOnce(t *testing.T) {
	k := newKit(t, kitOptions{})
	c, err := net.Dial("tcp", k.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT /reports/%s HTTP/1.1\r\nHost: relay\r\nContent-Length: 60000\r\n\r\n", reportName)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
		t.Fatalf("%d, close %v; want 401 and the connection closed", resp.StatusCode, resp.Close)
	}
	_ = c.SetReadDeadline(time.Now().Add(drainGrace + 3*time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the answer: %v, want EOF", err)
	}
}
