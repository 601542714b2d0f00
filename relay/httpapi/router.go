package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"sync"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/relay/access"
	"github.com/keel-relay/keel/relay/admintoken"
	"github.com/keel-relay/keel/relay/remoterun"
	"github.com/keel-relay/keel/relay/sharedfiles"
)

// prefixes are the prefixes the relay API is served under: bare (as old agents call shared
// files), the historical /rudder/relay-api, and the versioned /rudder/relay-api/1.
var prefixes = [...]string{"", "/rudder/relay-api", "/rudder/relay-api/1"}

// Lists are the reloadable network access lists of the two listeners.
type Lists struct {
	Shared       *access.List // shared files, status, info
	PolicyServer *access.List // remote run, reload (loopback included by the caller)
	Metrics      *access.List // GET /metrics on the admin listener
}

// System is what the system endpoints ask of the running daemon.
type System interface {
	// Status is the /system/status document and its HTTP status (503 while draining or
	// with a full disk).
	Status() (Status, int)
	// Info is the /system/info document.
	Info() map[string]any
	// Reload re-reads the config and the node map.
	Reload() error
	// Nodes is the number of nodes in the node map in force.
	Nodes() int
	// Backup writes an online backup of the store to w.
	Backup(w io.Writer) error
}

// Route is a route of the relay-box part of the API (SPEC-relay-box.md: agents' uploads,
// /uuid, the shared folder, policies), served on the relay API listener behind
// http.allowed_networks and the same middleware as every route.
type Route struct {
	// Method is the HTTP method; Path the httprouter pattern ("/inventories/:name"). A route
	// with no Method answers every method that has no route of its own on Path (in place of
	// 405), but OPTIONS, which is answered with the allowed methods unless routed.
	Method, Path string
	// Name is the route's label in the request metrics and logs ("uploads").
	Name   string
	Handle httprouter.Handle
}

// Options are the parts the routers serve.
type Options struct {
	// BoxRoutes are the relay-box routes (SPEC-relay-box.md), mounted as they are.
	BoxRoutes []Route
	// AdminRoutes are more routes of the admin listener, loopback only and behind the admin
	// token like /status (the listing of agents' uploads).
	AdminRoutes []Route
	// Lists returns the access lists in force (they change on reload).
	Lists  func() *Lists
	Files  *sharedfiles.Handler
	Remote *remoterun.Handler
	System System
	// AdminToken guards the admin listener's routes but /metrics (zero: no token).
	AdminToken admintoken.Token
	// Edge, when not nil, is the edge operator API, served under /edge/ on the admin
	// listener behind the admin token.
	Edge    http.Handler
	Metrics *metrics.Registry
	Log     *slog.Logger
}

// API is the relay API's front. Its handlers count the requests in flight, so that a drain
// can wait for them (Wait).
type API struct {
	opts     Options
	m        *requestMetrics
	inflight sync.WaitGroup
}

// New returns the front over opts.
func New(opts Options) *API {
	return &API{opts: opts, m: newRequestMetrics(opts.Metrics)}
}

// Wait blocks until every request handler has returned.
func (a *API) Wait() { a.inflight.Wait() }

func sharedList(l *Lists) *access.List  { return l.Shared }
func policyList(l *Lists) *access.List  { return l.PolicyServer }
func metricsList(l *Lists) *access.List { return l.Metrics }

// loopbackOnly is the access list choice of routes only loopback peers may call.
func loopbackOnly(*Lists) *access.List { return nil }

// Handler builds the relay API listener's handler: its router, behind CollapseSlashes.
func (a *API) Handler() http.Handler {
	r := httprouter.New()
	// Never rewrite paths: "/shared-files/t/s/.." must reach the id check and be refused,
	// not be cleaned into another route.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	files, remote := a.opts.Files, a.opts.Remote
	for _, p := range prefixes {
		path := p + "/shared-files/:target/:source/:file"
		r.PUT(path, a.Wrap("shared-files", sharedList, files.Put))
		r.HEAD(path, a.Wrap("shared-files", sharedList, files.Head))
		r.GET(path, a.Wrap("shared-files", sharedList, files.Get))
		if p == "" {
			continue
		}
		r.POST(p+"/remote-run/all", a.Wrap("remote-run", policyList, remote.All))
		r.POST(p+"/remote-run/nodes", a.Wrap("remote-run", policyList, remote.Nodes))
		r.POST(p+"/remote-run/nodes/:node", a.Wrap("remote-run", policyList, remote.Node))
		r.GET(p+"/system/status", a.Wrap("system/status", sharedList, a.status))
		r.GET(p+"/system/info", a.Wrap("system/info", sharedList, a.info))
		r.POST(p+"/system/reload", a.Wrap("system/reload", policyList, a.reload))
	}
	// Box routes with no method answer the methods that have no route of their own on their
	// path, in place of httprouter's 405.
	others := httprouter.New()
	for _, rt := range a.opts.BoxRoutes {
		if rt.Method == "" {
			others.Handle(http.MethodGet, rt.Path, a.Wrap(rt.Name, sharedList, rt.Handle))
			continue
		}
		r.Handle(rt.Method, rt.Path, a.Wrap(rt.Name, sharedList, rt.Handle))
	}
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if h, ps, _ := others.Lookup(http.MethodGet, req.URL.Path); h != nil {
			w.Header().Del("Allow")
			h(w, req, ps)
			return
		}
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
	})
	notFound := a.Wrap("other", sharedList, func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		http.Error(w, "no such route", http.StatusNotFound)
	})
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { notFound(w, r, nil) })
	return CollapseSlashes(r)
}

// AdminHandler builds the admin listener's router: metrics, the local status, reload and
// backup, and the edge operator API.
func (a *API) AdminHandler() http.Handler {
	r := httprouter.New()
	// Everything but /metrics is loopback only and, with admin.token_file, wants the token.
	admin := func(route string, h httprouter.Handle) httprouter.Handle {
		return a.Wrap(route, loopbackOnly, a.withAdminToken(h))
	}
	metricsHandler := a.opts.Metrics.Handler()
	r.GET("/metrics", a.Wrap("admin/metrics", metricsList, func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		metricsHandler.ServeHTTP(w, r)
	}))
	r.GET("/status", admin("admin/status", a.adminStatus))
	r.POST("/reload", admin("admin/reload", a.adminReload))
	r.GET("/backup", admin("admin/backup", a.backup))
	for _, rt := range a.opts.AdminRoutes {
		r.Handle(rt.Method, rt.Path, admin(rt.Name, rt.Handle))
	}
	if edge := a.opts.Edge; edge != nil {
		h := admin("admin/edge", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) { edge.ServeHTTP(w, r) })
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost} {
			r.Handle(m, "/edge/*path", h)
		}
	}
	return r
}

// withAdminToken refuses with 401 a request that lacks the admin token (admin.token_file);
// without a token file it lets every request through.
func (a *API) withAdminToken(h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if !a.opts.AdminToken.Authorized(r) {
			a.opts.Log.Warn("admin request refused: no valid admin token", "path", r.URL.Path, "peer", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="keel-relay admin"`)
			http.Error(w, "unauthorized: this relay's admin API wants the token of admin.token_file (Authorization: Bearer)", http.StatusUnauthorized)
			return
		}
		h(w, r, ps)
	}
}
