package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/internal/metrics"
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
