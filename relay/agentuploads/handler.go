// Package agentuploads receives agents' uploads, as Apache's WebDAV did on a Rudder relay
// (SPEC-relay-box.md "Uploads from agents"): PUT /inventories/<name> (nodes not yet accepted,
// htpasswd_initial), /inventory-updates/<name> and /reports/<name> (htpasswd), or a verified
// node client certificate instead of HTTP Basic. The body is streamed under the relay's
// bounds (http.max_body, body_idle_timeout, min_upload_rate, an upload slot of the pool
// shared with shared files) into the store, where it waits for delivery upstream (role
// relay), or into agent_uploads.root_dir for the Rudder server (role root); it is durable
// before the answer: 201 Created for a new name, 204 No Content for a replaced one.
package agentuploads

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/uploadname"
	"github.com/keel-relay/keel/relay/uploadbody"
	"github.com/keel-relay/keel/relay/uploadslots"
	"github.com/keel-relay/keel/storage"
)

// realm is the realm of the Basic challenge, Apache's for Rudder's WebDAV.
const realm = "WebDAV Storage"

// Verifier checks HTTP Basic credentials (an htpasswd.Watched).
type Verifier interface {
	Verify(user, password string) bool
}

// Options are the handler's settings. Exactly one of Store and RootDir says where uploads go.
type Options struct {
	// Store keeps uploads until they are delivered upstream (role relay); Stored is called
	// after each one is kept (it wakes the delivery).
	Store  *storage.Store
	Stored func()
	// RootDir (role root) is agent_uploads.root_dir: uploads are written atomically into
	// its subdirectories (uploadname.Kind.RootSubdir), created when missing.
	RootDir string
	// Initial checks the credentials of /inventories/ (agent_uploads.htpasswd_initial),
	// Accepted those of /inventory-updates/ and /reports/ (agent_uploads.htpasswd).
	Initial, Accepted Verifier
	// ClientNode names the node of the request's verified client certificate, which stands
	// instead of Basic credentials (nodecerts.NodeID); nil: none.
	ClientNode func(*http.Request) (string, bool)
	// MaxBody bounds a body (http.max_body).
	MaxBody func() int64
	// BodyIdleTimeout and MinUploadRate (bytes per second, 0: none) cut a client that stalls
	// or trickles its body (http.body_idle_timeout, http.min_upload_rate).
	BodyIdleTimeout time.Duration
	MinUploadRate   int64
	// Slots is the relay's upload pool (shared with shared files); UploadSlotWait bounds the
	// wait for a slot (http.upload_slot_wait), beyond which the answer is 503.
	Slots          *uploadslots.Pool
	UploadSlotWait time.Duration
	// Metrics, when not nil, is where keel_agent_uploads_received_total is registered.
	Metrics *metrics.Registry
}

// Handler serves the PUTs of agents' uploads.
type Handler struct {
	opts     Options
	log      *slog.Logger
	received *metrics.CounterVec // nil: no metrics
}

// Results are the values of the result label of keel_agent_uploads_received_total.
const (
	resultCreated      = "created"      // 201, kept
	resultReplaced     = "replaced"     // 204, kept in place of one of the same name
	resultDropped      = "dropped"      // 201, not kept: the name is not one to forward
	resultUnauthorized = "unauthorized" // 401
	resultDenied       = "denied"       // 403, another method than PUT
	resultBadName      = "bad_name"     // 400
	resultTooLarge     = "too_large"    // 413
	resultCut          = "cut"          // the body stalled, trickled, broke or was preempted
	resultBusy         = "busy"         // 503, no upload slot
	resultNoRoom       = "no_room"      // 507
	resultFailed       = "failed"       // 500
)

// New returns a handler.
func New(opts Options, log *slog.Logger) *Handler {
	h := &Handler{opts: opts, log: log}
	if reg := opts.Metrics; reg != nil {
		h.received = reg.Counter("keel_agent_uploads_received_total",
			"Agents' uploads (PUT /inventories/, /inventory-updates/, /reports/) by kind and result (created, replaced, dropped: accepted but not to be forwarded; unauthorized, denied, bad_name, too_large, cut, busy, no_room, failed).",
			"kind", "result")
		kinds := make([]string, 0, len(uploadname.Kinds))
		for _, k := range uploadname.Kinds {
			kinds = append(kinds, k.Dir())
		}
		h.received.Init(kinds, []string{"created", "replaced", "dropped", "unauthorized", "denied", "bad_name", "too_large", "cut", "busy", "no_room", "failed"})
	}
	return h
}

// count counts an outcome.
func (h *Handler) count(k uploadname.Kind, result string) {
	if h.received != nil {
		h.received.With(k.Dir(), result).Inc()
	}
}

// DeniedMethods returns the methods to route to Deny: the other methods of RFC 9110 but
// CONNECT and TRACE, PATCH, and WebDAV's. (The assembly also routes Deny for any method
// without a route.)
func DeniedMethods() []string {
	return []string{
		http.MethodGet, http.MethodHead, http.MethodPost, http.MethodDelete, http.MethodOptions, http.MethodPatch,
		"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK",
	}
}

// Deny answers 403 to any other method than PUT on kind k's path, as Apache does.
func (h *Handler) Deny(k uploadname.Kind) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		h.count(k, resultDenied)
		refuse(w, r, http.StatusForbidden, "forbidden: only PUT is allowed here")
	}
}

// Put handles PUT /<kind>/*name: the route's catch-all parameter "name" is the rest of the
// path, so that a name with a '/' is answered 400 rather than 404.
func (h *Handler) Put(k uploadname.Kind) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		h.put(w, r, k, strings.TrimPrefix(ps.ByName("name"), "/"))
	}
}

// upload is one PUT on its way.
type upload struct {
	kind    uploadname.Kind
	name    string
	log     *slog.Logger
	maxBody int64
	body    *uploadbody.Reader
}

func (h *Handler) put(w http.ResponseWriter, r *http.Request, k uploadname.Kind, name string) {
	who, ok := h.authenticate(r, k)
	if !ok {
		h.count(k, resultUnauthorized)
		w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
		refuse(w, r, http.StatusUnauthorized, "unauthorized: give the credentials of this path's htpasswd file, or a node certificate")
		return
	}
	if err := uploadname.Check(name); err != nil {
		h.count(k, resultBadName)
		refuse(w, r, http.StatusBadRequest, "name: "+err.Error())
		return
	}
	u := &upload{kind: k, name: name, maxBody: h.opts.MaxBody(),
		log: h.log.With("kind", k.Dir(), "name", name, "peer", r.RemoteAddr, "by", who)}
	if r.ContentLength > u.maxBody {
		h.count(k, resultTooLarge)
		refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d", r.ContentLength, u.maxBody))
		return
	}
	u.body = uploadbody.NewReader(http.MaxBytesReader(w, r.Body, u.maxBody), http.NewResponseController(w),
		h.opts.BodyIdleTimeout, h.opts.MinUploadRate)
	if !uploadname.Forwardable(k, name) {
		h.drop(w, r, u)
		return
	}
	client := uploadslots.ClientOf(r.RemoteAddr)
	slot, err := h.opts.Slots.Acquire(r.Context(), client, h.opts.UploadSlotWait, u.body.Preempt)
	if err != nil {
		_, msg := uploadbody.NoSlot(u.log, h.opts.Slots, client, h.opts.UploadSlotWait, err)
		h.count(k, resultBusy)
		w.Header().Set("Retry-After", strconv.Itoa(uploadbody.RetryAfterSeconds))
		refuse(w, r, http.StatusServiceUnavailable, msg)
		return
	}
	defer slot.Release()
	u.body.HoldSlot(slot)
	var replaced bool
	var size int64
	if h.opts.Store != nil {
		replaced, size, err = h.keep(r, u)
	} else {
		replaced, size, err = h.handOver(u)
	}
	if err != nil {
		h.failed(w, r, u, err)
		return
	}
	if h.opts.Stored != nil {
		h.opts.Stored()
	}
	if replaced {
		h.count(k, resultReplaced)
		u.log.Info("agent upload replaced", "bytes", size)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.count(k, resultCreated)
	u.log.Info("agent upload received", "bytes", size)
	w.Header().Set("Location", location(k, name))
	uploadbody.Reply(w, r, http.StatusCreated, "created")
}

// authenticate says who sent r: the node of its verified client certificate, else the user
// of its Basic credentials if kind k's htpasswd file has them.
func (h *Handler) authenticate(r *http.Request, k uploadname.Kind) (string, bool) {
	if h.opts.ClientNode != nil {
		if node, ok := h.opts.ClientNode(r); ok {
			return "node " + node, true
		}
	}
	user, password, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	v := h.opts.Accepted
	if k == uploadname.Inventory {
		v = h.opts.Initial
	}
	if v == nil || !v.Verify(user, password) {
		return "", false
	}
	return "user " + user, true
}

// drop reads the body of an upload whose name is not one to forward (such as the relay's own
// self-test file, uuid.hive) to its end, under the same bounds, keeps nothing and answers 201,
// as the upload was accepted.
func (h *Handler) drop(w http.ResponseWriter, r *http.Request, u *upload) {
	n, err := io.Copy(io.Discard, uploadbody.Source{R: u.body})
	if err != nil {
		h.failed(w, r, u, err)
		return
	}
	h.count(u.kind, resultDropped)
	u.log.Info("agent upload accepted and dropped: its name is not one to forward", "bytes", n)
	w.Header().Set("Location", location(u.kind, u.name))
	uploadbody.Reply(w, r, http.StatusCreated, "created")
}

// failed answers an upload that was not kept: its body could not be read (413, 408, 503
// when cut to make room for waiting uploads, 400), no room (507), or another failure (500).
// The body may not have been read to its end: the connection is closed after the answer.
func (h *Handler) failed(w http.ResponseWriter, r *http.Request, u *upload, err error) {
	var re uploadbody.ReadError
	switch {
	case errors.As(err, &re):
		if errors.Is(err, uploadbody.ErrPreempted) {
			h.count(u.kind, resultBusy)
			u.log.Warn("agent upload cut to make room for waiting uploads", "received", u.body.Received())
			w.Header().Set("Retry-After", strconv.Itoa(uploadbody.RetryAfterSeconds))
			refuse(w, r, http.StatusServiceUnavailable, "upload cut: every upload slot was in use and other uploads were waiting; this one was the slowest; nothing was stored; retry later")
			return
		}
		code, msg := uploadbody.Status(err, u.maxBody)
		result := resultCut
		if code == http.StatusRequestEntityTooLarge {
			result = resultTooLarge
		}
		h.count(u.kind, result)
		u.log.Warn("agent upload cut", "err", err, "received", u.body.Received())
		refuse(w, r, code, msg)
	case errors.Is(err, storage.ErrQueueFull), errors.Is(err, storage.ErrNoSpace), uploadbody.IsNoSpace(err):
		h.count(u.kind, resultNoRoom)
		u.log.Error("agent upload refused: no room", "err", err)
		full := "the relay's disk is full"
		if errors.Is(err, storage.ErrQueueFull) {
			full = "too many uploads are waiting for delivery (agent_uploads.max_waiting)"
		}
		refuse(w, r, http.StatusInsufficientStorage, "insufficient storage: "+full+"; nothing was stored")
	default:
		h.count(u.kind, resultFailed)
		u.log.Error("agent upload not stored", "err", err)
		refuse(w, r, http.StatusInternalServerError, "storage failure; nothing was stored")
	}
}

// location is the Location of a created upload: its path, escaped.
func location(k uploadname.Kind, name string) string {
	return (&url.URL{Path: "/" + k.Dir() + "/" + name}).EscapedPath()
}

// refuse answers an upload whose body was not read, or not to its end, then closes the
// connection. What is left of the body is read (and dropped) for drainGrace at most after the
// answer: net/http reads up to 256 KiB of it, with no deadline of its own, so that a client
// that sent it all reads the answer rather than a reset; a client that stalls holds the
// connection no longer than that.
func refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(drainGrace))
	}
	uploadbody.Reply(w, r, code, msg)
}

// drainGrace bounds the reading of a refused upload's body after the answer.
const drainGrace = 2 * time.Second
