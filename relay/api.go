package relay

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	edgeadmin "github.com/keel-relay/keel/edge/admin"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/relay/access"
)

// apiPrefixes are the prefixes the relay API is served under: bare (as old agents call
// shared files), the historical /rudder/relay-api, and the versioned /rudder/relay-api/1.
var apiPrefixes = [...]string{"", "/rudder/relay-api", "/rudder/relay-api/1"}

// serverMetrics are the daemon-level metrics.
type serverMetrics struct {
	requests  *metrics.CounterVec
	bytesIn   *metrics.CounterVec
	bytesOut  *metrics.CounterVec
	duration  *metrics.HistogramVec
	refused   *metrics.CounterVec
	nodeLoads *metrics.CounterVec
}

func newServerMetrics(reg *metrics.Registry, s *Server) *serverMetrics {
	m := &serverMetrics{
		requests:  reg.Counter("keel_http_requests_total", "Relay API requests by route, method and status code.", "route", "method", "code"),
		bytesIn:   reg.Counter("keel_http_request_bytes_total", "Request body bytes received by route.", "route"),
		bytesOut:  reg.Counter("keel_http_response_bytes_total", "Response body bytes sent by route.", "route"),
		duration:  reg.Histogram("keel_http_request_duration_seconds", "Relay API request durations by route.", []float64{.005, .025, .1, .5, 2.5, 10, 60}, "route"),
		refused:   reg.Counter("keel_http_access_refused_total", "Requests refused by network access control, by route.", "route"),
		nodeLoads: reg.Counter("keel_node_map_loads_total", "Node map loads by result.", "result"),
	}
	reg.GaugeFunc("keel_shared_files_stored", "Shared files stored for nodes of this relay.", func() float64 { return float64(s.store.FileCount()) })
	reg.GaugeFunc("keel_forward_queue_depth", "Shared files queued for a next hop.", func() float64 { return float64(s.store.JobCount()) })
	reg.GaugeFunc("keel_store_disk_bytes", "Disk space used by the store.", func() float64 { return float64(s.diskUsage.Load()) })
	reg.GaugeFunc("keel_node_map_nodes", "Nodes in the node map in force.", func() float64 { return float64(s.nodes.Current().Len()) })
	reg.GaugeFunc("keel_draining", "1 while the relay drains before stopping.", func() float64 {
		if s.draining.Load() {
			return 1
		}
		return 0
	})
	reg.Gauge("keel_build_info", "Build of the running keel-relay.", "version", "commit", "goversion").
		With(s.opts.Build.Version, s.opts.Build.Commit, runtime.Version()).Set(1)
	return m
}

// apiHandler builds the relay API router.
func (s *Server) apiHandler() http.Handler {
	r := httprouter.New()
	// Never rewrite paths: "/shared-files/t/s/.." must reach the id check and be refused,
	// not be cleaned into another route.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	shared := func(l *accessLists) *access.List { return l.shared }
	policy := func(l *accessLists) *access.List { return l.policyServer }
	for _, p := range apiPrefixes {
		files := p + "/shared-files/:target/:source/:file"
		r.PUT(files, s.wrap("shared-files", shared, s.files.Put))
		r.HEAD(files, s.wrap("shared-files", shared, s.files.Head))
		r.GET(files, s.wrap("shared-files", shared, s.files.Get))
		if p == "" {
			continue
		}
		r.POST(p+"/remote-run/all", s.wrap("remote-run", policy, s.remote.All))
		r.POST(p+"/remote-run/nodes", s.wrap("remote-run", policy, s.remote.Nodes))
		r.POST(p+"/remote-run/nodes/:node", s.wrap("remote-run", policy, s.remote.Node))
		r.GET(p+"/system/status", s.wrap("system/status", shared, s.status))
		r.GET(p+"/system/info", s.wrap("system/info", shared, s.info))
		r.POST(p+"/system/reload", s.wrap("system/reload", policy, s.reload))
	}
	notFound := s.wrap("other", shared, func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		http.Error(w, "no such route", http.StatusNotFound)
	})
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { notFound(w, r, nil) })
	return r
}

// adminHandler builds the admin listener's router: metrics and local status/reload.
func (s *Server) adminHandler() http.Handler {
	r := httprouter.New()
	loopback := func(*accessLists) *access.List { return nil }
	// Everything but /metrics is loopback only and, with admin.token_file, wants the token.
	admin := func(route string, h httprouter.Handle) httprouter.Handle {
		return s.wrap(route, loopback, s.withAdminToken(h))
	}
	scrapers := func(l *accessLists) *access.List { return l.metrics }
	metricsHandler := s.reg.Handler()
	r.GET("/metrics", s.wrap("admin/metrics", scrapers, func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		metricsHandler.ServeHTTP(w, r)
	}))
	r.GET("/status", admin("admin/status", s.status))
	r.POST("/reload", admin("admin/reload", s.reload))
	r.GET("/backup", admin("admin/backup", s.backup))
	if s.edge != nil { // the edge operator API (edge/admin)
		ea := edgeadmin.New(edgeadmin.ServerBackend{S: s.edge}, s.log.With("component", "edge-admin"))
		h := admin("admin/edge", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) { ea.ServeHTTP(w, r) })
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost} {
			r.Handle(m, "/edge/*path", h)
		}
	}
	return r
}

// withAdminToken refuses with 401 a request that lacks the admin token (admin.token_file);
// without a token file it lets every request through.
func (s *Server) withAdminToken(h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if !s.adminToken.Authorized(r) {
			s.log.Warn("admin request refused: no valid admin token", "path", r.URL.Path, "peer", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="keel-relay admin"`)
			http.Error(w, "unauthorized: this relay's admin API wants the token of admin.token_file (Authorization: Bearer)", http.StatusUnauthorized)
			return
		}
		h(w, r, ps)
	}
}

// wrap adds access control (list == nil means loopback only), request logging and metrics,
// and answers 500 for a handler that returned without answering.
func (s *Server) wrap(route string, list func(*accessLists) *access.List, h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		s.inflight.Add(1)
		defer s.inflight.Done()
		start := time.Now()
		rec := &recorder{ResponseWriter: w, code: http.StatusOK}
		body := &countingBody{ReadCloser: r.Body}
		r.Body = body
		defer func() {
			code := strconv.Itoa(rec.code)
			s.m.requests.With(route, methodLabel(r.Method), code).Inc()
			s.m.bytesIn.With(route).Add(float64(body.n))
			s.m.bytesOut.With(route).Add(float64(rec.n))
			s.m.duration.With(route).Observe(time.Since(start).Seconds())
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.String("peer", r.RemoteAddr), slog.Int("status", rec.code), slog.Int64("bytes_in", body.n),
				slog.Int64("bytes_out", rec.n), slog.Duration("took", time.Since(start).Round(time.Microsecond)))
		}()
		peer, err := access.PeerAddr(r.RemoteAddr)
		allowed := err == nil && peer.Unmap().IsLoopback()
		if l := list(s.lists.Load()); l != nil && err == nil {
			allowed = l.Allows(peer)
		}
		if !allowed {
			s.m.refused.With(route).Inc()
			s.log.Warn("request refused by network access control", "route", route, "peer", r.RemoteAddr)
			rec.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if r.Method == http.MethodHead {
				rec.Header().Set("Content-Length", "0")
				rec.WriteHeader(http.StatusForbidden)
				return
			}
			rec.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(rec, "forbidden: "+r.RemoteAddr+" is not in the networks allowed for "+route+"\n")
			return
		}
		h(rec, r, ps)
		if !rec.wrote {
			// net/http would send an empty 200: a success that did nothing. Every handler
			// answers on every path; this is the net under a path that forgot to.
			s.log.Error("handler returned without an answer; answering 500", "route", route, "method", r.Method, "path", r.URL.Path, "peer", r.RemoteAddr)
			http.Error(rec, "internal error: the relay gave no answer to this request; retry it", http.StatusInternalServerError)
		}
	}
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

type countingBody struct {
	io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

// Status is the JSON answer of /system/status.
type Status struct {
	Status       string        `json:"status"` // ok | disk_full | draining
	Version      string        `json:"version"`
	NodeID       string        `json:"node_id"`
	Role         string        `json:"role"`
	UptimeSec    int64         `json:"uptime_seconds"`
	NodeMap      NodeMapStatus `json:"node_map"`
	Files        int64         `json:"files_stored"`
	QueueDepth   int64         `json:"queue_depth"`
	StoreBytes   int64         `json:"store_bytes"`
	EdgeDaemons  int           `json:"edge_daemons_connected"`
	NodesFile    string        `json:"nodes_file,omitempty"`
	StatusReason string        `json:"reason,omitempty"`
	// Disk is the free space of data_dir's file system (absent where it cannot be measured).
	Disk *DiskStatus `json:"disk,omitempty"`
	// Memory is the memory budget, its split and the memory in use.
	Memory *MemoryStatus `json:"memory,omitempty"`
}

// DiskStatus is the free space of data_dir's file system, as the store sees it.
type DiskStatus struct {
	FreeBytes int64 `json:"free_bytes"`
	// NeedBytes is what writes must leave free: below it they are refused (507,
	// ResourceExhausted). It is the reserve, plus what the ballast lacks.
	NeedBytes    int64 `json:"need_bytes"`
	ReserveBytes int64 `json:"reserve_bytes"`
	// BallastBytes is the space held in data_dir/disk-reserve, released to the database
	// when the disk fills up; BallastWantBytes the size it should have.
	BallastBytes     int64 `json:"ballast_bytes"`
	BallastWantBytes int64 `json:"ballast_want_bytes"`
	Full             bool  `json:"full"`
}

// NodeMapStatus describes the node map in force.
type NodeMapStatus struct {
	Nodes     int       `json:"nodes"`
	LoadedAt  time.Time `json:"loaded_at"`
	Digest    string    `json:"digest,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	// Kept says the map in force is the one kept in the store, which a restart with a broken or
	// missing nodes file routes with; KeepError says why it is not, when keeping it failed.
	Kept      bool   `json:"kept"`
	KeepError string `json:"keep_error,omitempty"`
}

func (s *Server) currentStatus() (Status, int) {
	cfg := s.cfg.Load()
	m := s.nodes.Current()
	st := Status{
		Status: "ok", Version: s.opts.Build.Version, NodeID: cfg.NodeID, Role: cfg.Role,
		UptimeSec: int64(time.Since(s.started).Seconds()),
		NodeMap:   NodeMapStatus{Nodes: m.Len(), Digest: m.Digest()},
		Files:     s.store.FileCount(), QueueDepth: s.store.JobCount(), StoreBytes: s.diskUsage.Load(),
		NodesFile: cfg.NodesFile, Memory: s.memoryStatus(),
	}
	if s.edge != nil {
		st.EdgeDaemons = s.edge.Streams()
	}
	if t := s.nodeLoaded.Load(); t != nil {
		st.NodeMap.LoadedAt = t.UTC()
	}
	if e := s.nodeLoadErr.Load(); e != nil {
		st.NodeMap.LastError = *e
	}
	if d := s.nodeKept.Load(); d != nil && *d == m.Digest() && m.Digest() != "" {
		st.NodeMap.Kept = true
	} else if e := s.nodeKeepErr.Load(); e != nil {
		st.NodeMap.KeepError = *e
	}
	sp := s.store.Space()
	if sp.Known() {
		st.Disk = &DiskStatus{FreeBytes: sp.Free, NeedBytes: sp.Need, ReserveBytes: sp.Reserve,
			BallastBytes: sp.Ballast, BallastWantBytes: sp.BallastSize, Full: sp.Full()}
	}
	if s.draining.Load() {
		st.Status, st.StatusReason = "draining", "the relay is stopping"
		return st, http.StatusServiceUnavailable
	}
	if sp.Full() {
		// Not healthy: uploads and edge enrolments are refused. Reads go on.
		st.Status, st.StatusReason = "disk_full", sp.Reason()+"; writes are refused, reads go on"
		return st, http.StatusServiceUnavailable
	}
	return st, http.StatusOK
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	st, code := s.currentStatus()
	writeJSON(w, code, st)
}

func (s *Server) info(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	cfg := s.cfg.Load()
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "keel-relay", "version": s.opts.Build.Version, "commit": s.opts.Build.Commit,
		"build_date": s.opts.Build.Date, "go_version": runtime.Version(),
		"os": runtime.GOOS, "arch": runtime.GOARCH,
		"node_id": cfg.NodeID, "role": cfg.Role, "upstream": cfg.Upstream,
		"api_versions": []int{1}, "features": []string{"shared-files", "remote-run", "system"},
		"started": s.started.UTC(),
	})
}

func (s *Server) reload(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	if err := s.Reload(); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"reloaded": false, "error": err.Error(), "nodes": s.nodes.Current().Len()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"reloaded": true, "nodes": s.nodes.Current().Len()})
}

// backup streams an online backup of the whole store (used by `keel-relay backup` while the
// daemon holds the store).
func (s *Server) backup(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := BackupStore(s.store, s.cfg.Load().DataDir, w); err != nil {
		s.log.Error("online backup failed", "err", err)
		// The status is already sent; abort the stream so the client sees a broken body.
		panic(http.ErrAbortHandler)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
