// Package admin is the operator surface of the edge API on the relay's admin listener: list
// and show edge daemons (status, last seen, capabilities, tags), replace their server-managed
// tags, revoke them, drain one or all, push a config delta, and invoke a tool on one node or
// on a fleet selected by tags and labels, with bounded parallelism and live per-node output;
// a fleet command can be cancelled by its id.
//
//	GET  /edge/daemons                 JSON list of daemons
//	GET  /edge/daemons/ID              one daemon
//	PUT  /edge/daemons/ID/tags         {"tags": {"k": "v"}} replaces the tags
//	POST /edge/daemons/ID/revoke       evicts the stream, blacklists the token
//	POST /edge/daemons/ID/drain        sends Drain to the daemon
//	POST /edge/daemons/ID/config       {"delta": <JSON>, "version": "v2"} sends PushConfig
//	POST /edge/drain                   sends Drain to every connected daemon
//	POST /edge/invoke                  {"node"|"tags"/"labels", "tool", "args", "timeout", "parallel"}
//	GET  /edge/fleet                   running fleet commands
//	POST /edge/fleet/ID/cancel         cancels a fleet command
//
// An invoke answers 200 at once with the fleet command id in the Keel-Fleet-Id header, then
// streams "<node>: <line>" output lines and, for each node, one JSON result line (node,
// exit_code, duration_ms, stderr, outcome, error) as remote run does.
//
// The handler does no access control: the relay mounts it on the admin listener behind its
// loopback-only check.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/edge/dispatch"
	"github.com/keel-relay/keel/edge/fleet"
	"github.com/keel-relay/keel/edge/registry"
	"github.com/keel-relay/keel/storage"
)

// Statuses of a daemon (Daemon.Status): the fleet vocabulary, under the names the CLI uses.
const (
	StatusConnected    = fleet.Connected
	StatusUnhealthy    = fleet.Unhealthy
	StatusDisconnected = fleet.Disconnected
	StatusRevoked      = fleet.Revoked
)

// FleetHeader carries the fleet command id of an invoke.
const FleetHeader = "Keel-Fleet-Id"

// Daemon is one edge daemon as the admin API shows it.
type Daemon struct {
	NodeID       string            `json:"node_id"`
	Tenant       string            `json:"tenant"`
	Label        string            `json:"label"`
	Status       string            `json:"status"` // connected, unhealthy, disconnected or revoked (see fleet.Status)
	LastSeen     *time.Time        `json:"last_seen,omitempty"`
	EnrolledAt   *time.Time        `json:"enrolled_at,omitempty"`
	RevokedAt    *time.Time        `json:"revoked_at,omitempty"`
	Capabilities Capabilities      `json:"capabilities"`
	Tags         map[string]string `json:"tags"`
}

// Capabilities are what the daemon declared in its Hello or last CapabilityUpdate.
type Capabilities struct {
	OS          string            `json:"os"`
	Arch        string            `json:"arch"`
	Tools       []string          `json:"tools"`
	MountPoints []string          `json:"mount_points,omitempty"`
	Labels      map[string]string `json:"labels"`
}

// Backend is what the admin API drives: the relay's edge server.
type Backend interface {
	// Daemons lists every enrolled daemon, ordered by node id.
	Daemons(ctx context.Context) ([]Daemon, error)
	// Daemon returns one daemon (an error wrapping storage.ErrNotFound when unknown).
	Daemon(ctx context.Context, id string) (Daemon, error)
	// SetTags replaces the daemon's server-managed tags.
	SetTags(ctx context.Context, id string, tags map[string]string) (Daemon, error)
	// Revoke marks the daemon revoked, blacklists its token and evicts its stream.
	Revoke(ctx context.Context, id string) (Daemon, error)
	// Drain sends Drain to the daemon (registry.ErrNotConnected when it has no stream).
	Drain(ctx context.Context, id string) error
	// DrainAll sends Drain to every connected daemon and returns how many got it.
	DrainAll(ctx context.Context) (int, error)
	// PushConfig sends a config delta to the daemon.
	PushConfig(ctx context.Context, id string, delta []byte, version string) error
	// Select returns the node ids of the daemons a selector picks (see fleet.Select).
	Select(ctx context.Context, sel fleet.Selector) ([]string, error)
	// StartFleet runs a command on several nodes (see dispatch.Dispatcher.StartFleet).
	StartFleet(ctx context.Context, req dispatch.FleetRequest, on func(dispatch.FleetEvent)) (*dispatch.Fleet, error)
	// CancelFleet cancels a running fleet command; false when there is none with that id.
	CancelFleet(id, reason string) bool
	// Fleets lists the running fleet commands.
	Fleets() []*dispatch.Fleet
}

// Handler serves the edge admin API.
type Handler struct {
	b      Backend
	log    *slog.Logger
	router *httprouter.Router
}

// New returns the admin API over b.
func New(b Backend, log *slog.Logger) *Handler {
	h := &Handler{b: b, log: log, router: httprouter.New()}
	r := h.router
	r.GET("/edge/daemons", h.list)
	r.GET("/edge/daemons/:id", h.show)
	r.PUT("/edge/daemons/:id/tags", h.tags)
	r.POST("/edge/daemons/:id/revoke", h.revoke)
	r.POST("/edge/daemons/:id/drain", h.drain)
	r.POST("/edge/daemons/:id/config", h.config)
	r.POST("/edge/drain", h.drainAll)
	r.POST("/edge/invoke", h.invoke)
	r.GET("/edge/fleet", h.fleets)
	r.POST("/edge/fleet/:id/cancel", h.cancel)
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpError(w, http.StatusNotFound, fmt.Sprintf("no edge admin route %s %s", r.Method, r.URL.Path))
	})
	r.HandleMethodNotAllowed = true
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.router.ServeHTTP(w, r) }

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// fail answers err with the status it calls for.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, errTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadRequest), errors.Is(err, storage.ErrInvalid), errors.Is(err, dispatch.ErrBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, storage.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, storage.ErrRevoked):
		code = http.StatusConflict
	case errors.Is(err, registry.ErrNotConnected):
		code = http.StatusConflict
	case errors.Is(err, registry.ErrQueueFull), errors.Is(err, dispatch.ErrTooManyFleets), errors.Is(err, dispatch.ErrTooMany),
		errors.Is(err, dispatch.ErrShutdown):
		code = http.StatusServiceUnavailable
	case errors.Is(err, storage.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, storage.ErrNoSpace):
		code = http.StatusInsufficientStorage
	}
	if code == http.StatusInternalServerError {
		h.log.Error("edge admin", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	httpError(w, code, err.Error())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client going away is not our error
}

// nodeParam returns the validated :id of the route.
func nodeParam(ps httprouter.Params) (string, error) {
	id := ps.ByName("id")
	return id, ValidNodeID(id)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	ds, err := h.b.Daemons(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if ds == nil {
		ds = []Daemon{}
	}
	writeJSON(w, ds)
}

func (h *Handler) show(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	id, err := nodeParam(ps)
	if err == nil {
		var d Daemon
		if d, err = h.b.Daemon(r.Context(), id); err == nil {
			writeJSON(w, d)
			return
		}
	}
	h.fail(w, r, err)
}

func (h *Handler) tags(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	id, err := nodeParam(ps)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	tags, err := ParseTags(r.Body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d, err := h.b.SetTags(r.Context(), id, tags)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("edge daemon tags set", "node", id, "tags", tags)
	writeJSON(w, d)
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	id, err := nodeParam(ps)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d, err := h.b.Revoke(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("edge daemon revoked by the operator", "node", id)
	writeJSON(w, d)
}

func (h *Handler) drain(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	id, err := nodeParam(ps)
	if err == nil {
		err = h.b.Drain(r.Context(), id)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("edge daemon drain sent", "node", id)
	writeJSON(w, map[string]int{"drained": 1})
}

func (h *Handler) drainAll(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	n, err := h.b.DrainAll(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("edge drain sent to every connected daemon", "daemons", n)
	writeJSON(w, map[string]int{"drained": n})
}

func (h *Handler) config(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	id, err := nodeParam(ps)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	delta, version, err := ParseConfig(r.Body)
	if err == nil {
		err = h.b.PushConfig(r.Context(), id, delta, version)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("edge config pushed", "node", id, "version", version, "bytes", len(delta))
	writeJSON(w, map[string]string{"node_id": id, "version": version})
}

// FleetInfo describes a running fleet command.
type FleetInfo struct {
	ID      string    `json:"id"`
	Nodes   int       `json:"nodes"`
	Started time.Time `json:"started"`
}

func (h *Handler) fleets(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	out := []FleetInfo{}
	for _, f := range h.b.Fleets() {
		out = append(out, FleetInfo{ID: f.ID, Nodes: len(f.Nodes), Started: f.Started})
	}
	writeJSON(w, out)
}

func (h *Handler) cancel(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	id := ps.ByName("id")
	if err := ValidFleetID(id); err != nil {
		h.fail(w, r, err)
		return
	}
	if !h.b.CancelFleet(id, "cancelled by the operator") {
		httpError(w, http.StatusNotFound, fmt.Sprintf("no running fleet command %s", id))
		return
	}
	h.log.Info("edge fleet command cancelled by the operator", "fleet", id)
	writeJSON(w, map[string]string{"cancelled": id})
}

// targets resolves an invoke's nodes: the one named (which must be enrolled and not
// revoked), or every non-revoked daemon the tags and labels select, ordered by node id.
func (h *Handler) targets(ctx context.Context, inv Invoke) ([]string, error) {
	sel := fleet.Selector{Tags: inv.Tags, Labels: inv.Labels}
	if inv.Node != "" {
		sel = fleet.Selector{Nodes: []string{inv.Node}}
	}
	return h.b.Select(ctx, sel)
}
