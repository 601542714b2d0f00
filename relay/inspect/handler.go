package inspect

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/internal/wire/ids"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/nodemap"
	"github.com/keel-relay/keel/storage"
)

// Options are what the admin routes read: the store, the node map in force and where it
// came from, the relay's role and upstream, and how to wake the forward worker.
type Options struct {
	Store *storage.Store
	Nodes func() *nodemap.Map
	// NodesSource says where the map in force was read from (the nodes file).
	NodesSource func() string
	// Root reports whether the relay is the root server; Upstream its upstream URL.
	Root     func() bool
	Upstream func() string
	// Wake tells the forward worker a job became due (after a retry).
	Wake func()
	Log  *slog.Logger
}

// Routes are the admin listener's inspection routes (loopback only, behind the admin token):
//
//	GET  /files[?target=ID][&limit=N]   Files
//	GET  /queue[?limit=N]               Queue (limit=0: the summary alone)
//	POST /queue/:id/retry               Job, due now
//	POST /queue/:id/drop                Job, dropped
//	GET  /nodes[?limit=N]               Nodes
//	GET  /nodes/:id/route               Route
func Routes(o Options) []httpapi.Route {
	return []httpapi.Route{
		{Method: http.MethodGet, Path: "/files", Name: "admin/files", Handle: o.files},
		{Method: http.MethodGet, Path: "/queue", Name: "admin/queue", Handle: o.queue},
		{Method: http.MethodPost, Path: "/queue/:id/retry", Name: "admin/queue", Handle: o.retry},
		{Method: http.MethodPost, Path: "/queue/:id/drop", Name: "admin/queue", Handle: o.drop},
		{Method: http.MethodGet, Path: "/nodes", Name: "admin/nodes", Handle: o.nodes},
		{Method: http.MethodGet, Path: "/nodes/:id/route", Name: "admin/nodes", Handle: o.route},
	}
}

// parseLimit reads a listing's limit ("" = DefaultLimit; min..MaxLimit).
func parseLimit(v string, min int) (int, error) {
	if v == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > MaxLimit {
		return 0, errors.New("limit must be a number from " + strconv.Itoa(min) + " to " + strconv.Itoa(MaxLimit))
	}
	return n, nil
}

func (o Options) files(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	limit, err := parseLimit(q.Get("limit"), 1)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	target := q.Get("target")
	if target != "" {
		if err := ids.ValidNodeID(target); err != nil {
			http.Error(w, "target: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	out, err := ListFiles(o.Store, target, limit)
	if err != nil {
		o.Log.Error("list files", "err", err)
		http.Error(w, "cannot list the files: "+err.Error(), http.StatusInternalServerError)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (o Options) queue(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	limit, err := parseLimit(r.URL.Query().Get("limit"), 0)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out, err := ListQueue(o.Store, limit)
	if err != nil {
		o.Log.Error("list the queue", "err", err)
		http.Error(w, "cannot list the queue: "+err.Error(), http.StatusInternalServerError)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (o Options) retry(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
	job, err := o.Store.RetryJob(ps.ByName("id"), time.Now())
	if o.jobAnswer(w, "retry", job, err) && o.Wake != nil {
		o.Wake()
	}
}

func (o Options) drop(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
	job, err := o.Store.DropJob(ps.ByName("id"))
	o.jobAnswer(w, "drop", job, err)
}

// jobAnswer answers a retry or drop: the job, or why not. It reports success.
func (o Options) jobAnswer(w http.ResponseWriter, what string, job storage.Job, err error) bool {
	switch {
	case errors.Is(err, storage.ErrBadJobID):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, storage.ErrNotFound):
		http.Error(w, "no such job in the queue (delivered, dropped or superseded?)", http.StatusNotFound)
	case err != nil:
		o.Log.Error("queue "+what, "err", err)
		http.Error(w, "cannot "+what+" the job: "+err.Error(), http.StatusInternalServerError)
	default:
		o.Log.Info("queue "+what+" by the operator", "job", job.ID(), "file", job.File.String())
		httpapi.WriteJSON(w, http.StatusOK, JobOf(job))
		return true
	}
	return false
}

func (o Options) nodes(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	limit, err := parseLimit(r.URL.Query().Get("limit"), 1)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, ListNodes(o.Nodes(), o.NodesSource(), limit))
}

func (o Options) route(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
	id := ps.ByName("id")
	if err := ids.ValidNodeID(id); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, Explain(o.Nodes(), o.Root(), o.Upstream(), id))
}
