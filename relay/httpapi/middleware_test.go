package httpapi

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/relay/access"
	"github.com/keel-relay/keel/relay/config"
)

func testAPI() *API {
	return New(Options{
		Lists:   func() *Lists { return &Lists{} },
		Metrics: metrics.NewRegistry(),
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

// TestNoAnswerIsNot200: a handler that returns without answering gets a 500 from the
// middleware, never net/http's implicit empty 200, over a real connection.
func TestNoAnswerIsNot200(t *testing.T) {
	t.Parallel()
	a := testAPI()
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		code int
	}{
		{"returns at once", func(http.ResponseWriter, *http.Request) {}, http.StatusInternalServerError},
		{"sets headers only", func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("X-A", "b") }, http.StatusInternalServerError},
		{"answers 200", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }, http.StatusOK},
		{"writes a body", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }, http.StatusOK},
		{"answers 204", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }, http.StatusNoContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wrapped := a.Wrap("test", loopbackOnly, func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) { tc.h(w, r) })
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { wrapped(w, r, nil) }))
			defer srv.Close()
			req, err := http.NewRequest(http.MethodPut, srv.URL+"/x", strings.NewReader("body"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("%d %q, want %d", resp.StatusCode, body, tc.code)
			}
		})
	}
}

func TestMethodLabel(t *testing.T) {
	for in, want := range map[string]string{
		"GET": "GET", "PUT": "PUT", "PATCH": "PATCH", "TRACE": "TRACE",
		"get": "other", "M000001": "other", "": "other", "PROPFIND": "other",
	} {
		if got := methodLabel(in); got != want {
			t.Errorf("methodLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

// lockedBuffer is a log output the server's goroutines and the test share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// TestRequestLog: which answers get a request line under each http.request_log mode, at
// which level, over a real server; the mode is read per request (a reload changes it).
func TestRequestLog(t *testing.T) {
	out := &lockedBuffer{}
	var mode atomic.Value
	a := New(Options{
		Lists:      func() *Lists { return &Lists{} },
		Metrics:    metrics.NewRegistry(),
		Log:        slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{ReplaceAttr: dropTimeAttr})),
		RequestLog: func() string { return mode.Load().(string) },
	})
	wrapped := a.Wrap("test", loopbackOnly, func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		w.WriteHeader(code)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { wrapped(w, r, nil) }))
	defer srv.Close()
	codes := []int{200, 204, 304, 400, 403, 404, 413, 429, 500, 503, 507}
	for _, tc := range []struct {
		mode string
		want map[int]string // code → level of its line; absent: no line
	}{
		{config.RequestLogOff, map[int]string{500: "WARN", 503: "WARN", 507: "WARN"}},
		{config.RequestLogErrors, map[int]string{400: "INFO", 403: "INFO", 413: "INFO", 429: "INFO", 500: "WARN", 503: "WARN", 507: "WARN"}},
		{config.RequestLogAll, map[int]string{200: "INFO", 204: "INFO", 304: "INFO", 400: "INFO", 403: "INFO", 404: "INFO", 413: "INFO", 429: "INFO", 500: "WARN", 503: "WARN", 507: "WARN"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			mode.Store(tc.mode)
			for _, code := range codes {
				resp, err := http.Get(srv.URL + "/x?code=" + strconv.Itoa(code))
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				got := strings.TrimSpace(out.take())
				want := ""
				if level, ok := tc.want[code]; ok {
					want = "level=" + level + " msg=request method=GET path=/x peer="
				}
				switch {
				case want == "" && got != "":
					t.Errorf("%d: logged %q, want no line", code, got)
				case want != "" && (!strings.HasPrefix(got, want) || !strings.Contains(got, " status="+strconv.Itoa(code)+" ")):
					t.Errorf("%d: logged %q, want %q...", code, got, want)
				}
			}
		})
	}
}

// TestRefusedLoggedOnce: a request refused by access control has its warning, not a second
// request line.
func TestRefusedLoggedOnce(t *testing.T) {
	out := &lockedBuffer{}
	shared, err := access.Parse([]string{"192.0.2.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	a := New(Options{
		Lists:      func() *Lists { return &Lists{Shared: shared} },
		Metrics:    metrics.NewRegistry(),
		Log:        slog.New(slog.NewTextHandler(out, nil)),
		RequestLog: func() string { return config.RequestLogAll },
	})
	wrapped := a.Wrap("test", sharedList, func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) { w.WriteHeader(200) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { wrapped(w, r, nil) }))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if lines := strings.Split(strings.TrimSpace(out.take()), "\n"); resp.StatusCode != 403 || len(lines) != 1 || !strings.Contains(lines[0], "refused by network access control") {
		t.Errorf("%d, lines %q", resp.StatusCode, lines)
	}
}

func dropTimeAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
