package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/relay/access"
	"github.com/keel-relay/keel/relay/config"
)

// requestMetrics are the metrics of every request through Wrap.
type requestMetrics struct {
	requests *metrics.CounterVec
	bytesIn  *metrics.CounterVec
	bytesOut *metrics.CounterVec
	duration *metrics.HistogramVec
	refused  *metrics.CounterVec
	admin    *metrics.CounterVec // the admin listener's requests, kept out of the relay API's
}

func newRequestMetrics(reg *metrics.Registry) *requestMetrics {
	return &requestMetrics{
		requests: reg.Counter("keel_http_requests_total", "Relay API requests by route, method and status code.", "route", "method", "code"),
		bytesIn:  reg.Counter("keel_http_request_bytes_total", "Request body bytes received by route.", "route"),
		bytesOut: reg.Counter("keel_http_response_bytes_total", "Response body bytes sent by route.", "route"),
		duration: reg.Histogram("keel_http_request_duration_seconds", "Relay API request durations by route.", []float64{.005, .025, .1, .5, 2.5, 10, 60}, "route"),
		refused:  reg.Counter("keel_http_access_refused_total", "Requests refused by network access control, by route.", "route"),
		admin:    reg.Counter("keel_admin_http_requests_total", "Admin listener requests (/metrics, /status, /reload, /backup, /edge/...) by route, method and status code.", "route", "method", "code"),
	}
}

// Wrap puts h behind the middleware: the network access list that list picks from the lists
// in force (a nil list means loopback only), request logging and metrics, and a 500 for a
// handler that returned without answering.
func (a *API) Wrap(route string, list func(*Lists) *access.List, h httprouter.Handle) httprouter.Handle {
	// Routes are a fixed set, known here: their series are exported at 0 from the start.
	a.m.refused.With(route)
	if !isAdmin(route) {
		a.m.bytesIn.With(route)
		a.m.bytesOut.With(route)
		a.m.duration.With(route)
	}
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		a.inflight.Add(1)
		defer a.inflight.Done()
		start := time.Now()
		rec := &recorder{ResponseWriter: w, code: http.StatusOK}
		body := &countingBody{ReadCloser: r.Body}
		r.Body = body
		refused := false // refuse logs its own line
		defer func() { a.account(r, route, rec, body, start, refused) }()
		if !a.allowed(r, list) {
			refused = true
			a.refuse(rec, r, route)
			return
		}
		h(rec, r, ps)
		if !rec.wrote {
			// net/http would send an empty 200: a success that did nothing. Every handler
			// answers on every path; this is the net under a path that forgot to.
			a.opts.Log.Error("handler returned without an answer; answering 500", "route", route, "method", r.Method, "path", r.URL.Path, "peer", r.RemoteAddr)
			http.Error(rec, "internal error: the relay gave no answer to this request; retry it", http.StatusInternalServerError)
		}
	}
}

// allowed says whether the peer of r may call a route guarded by list.
func (a *API) allowed(r *http.Request, list func(*Lists) *access.List) bool {
	peer, err := access.PeerAddr(r.RemoteAddr)
	if err != nil {
		return false
	}
	if l := list(a.opts.Lists()); l != nil {
		return l.Allows(peer)
	}
	return peer.Unmap().IsLoopback()
}

// refuse answers 403 to a peer outside the route's networks.
func (a *API) refuse(rec *recorder, r *http.Request, route string) {
	a.m.refused.With(route).Inc()
	a.opts.Log.Warn("request refused by network access control", "route", route, "peer", r.RemoteAddr)
	rec.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		rec.Header().Set("Content-Length", "0")
		rec.WriteHeader(http.StatusForbidden)
		return
	}
	rec.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(rec, "forbidden: "+r.RemoteAddr+" is not in the networks allowed for "+route+"\n")
}

// account counts a request once it is answered (the admin listener's apart from the relay
// API's), and logs it when http.request_log says so (a request refused by access control
// has its own line already).
func (a *API) account(r *http.Request, route string, rec *recorder, body *countingBody, start time.Time, refused bool) {
	took := time.Since(start)
	if isAdmin(route) {
		a.m.admin.With(route, methodLabel(r.Method), strconv.Itoa(rec.code)).Inc()
	} else {
		a.m.requests.With(route, methodLabel(r.Method), strconv.Itoa(rec.code)).Inc()
		a.m.bytesIn.With(route).Add(float64(body.n))
		a.m.bytesOut.With(route).Add(float64(rec.n))
		a.m.duration.With(route).Observe(took.Seconds())
	}
	if !refused {
		a.logRequest(r, rec, body, took)
	}
}

// isAdmin says whether route is one of the admin listener's ("admin/..."), counted apart
// from the relay API.
func isAdmin(route string) bool { return strings.HasPrefix(route, "admin/") }

// logRequest logs an answered request if http.request_log asks for it.
func (a *API) logRequest(r *http.Request, rec *recorder, body *countingBody, took time.Duration) {
	mode := config.RequestLogErrors
	if a.opts.RequestLog != nil {
		mode = a.opts.RequestLog()
	}
	level, logged := requestLogLevel(mode, rec.code)
	if !logged {
		return
	}
	a.opts.Log.LogAttrs(r.Context(), level, "request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.String("peer", r.RemoteAddr), slog.Int("status", rec.code), slog.Int64("bytes_in", body.n),
		slog.Int64("bytes_out", rec.n), slog.Duration("took", took.Round(time.Microsecond)))
}

// requestLogLevel returns whether a request answered code gets a log line under
// http.request_log mode, and at which level. An answer of 500 and above is logged whatever
// the mode, as a warning: the relay failed (or, for 503 and 507, asks to retry later), and
// an operator wants to see it. Under "errors" (the default), the other answers of 400 and
// above are logged at info, but 404: a HEAD or GET for a file that is not (yet) there is
// routine. Under "all", every request is logged at info, as before http.request_log: 27,000
// lines a second under load, past journald's rate limit.
func requestLogLevel(mode string, code int) (slog.Level, bool) {
	switch {
	case code >= 500:
		return slog.LevelWarn, true
	case mode == config.RequestLogAll:
		return slog.LevelInfo, true
	case mode == config.RequestLogErrors && code >= 400 && code != http.StatusNotFound:
		return slog.LevelInfo, true
	}
	return 0, false
}

// methodLabel is the method label of keel_http_requests_total: one of the methods of RFC 9110
// and PATCH, else "other". A label value taken from the request as sent would let any peer
// create series without bound.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodOptions, http.MethodPatch, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// recorder captures the status code and body size of a response.
type recorder struct {
	http.ResponseWriter
	code  int
	n     int64
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote && code >= 200 { // a 1xx is not the answer
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(p)
	r.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (read deadlines, flushes).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// countingBody counts the request body bytes read.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}
