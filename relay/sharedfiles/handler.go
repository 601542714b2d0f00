// Package sharedfiles serves the shared-files part of the relay API: PUT (signed upload,
// stored for a node of this relay or queued for the next hop), HEAD (hash compare, asked of the
// next hop when the target is not here) and GET (download by the target node).
package sharedfiles

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/internal/membudget"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/ids"
	"github.com/keel-relay/keel/relay/forward"
	"github.com/keel-relay/keel/relay/nodemap"
	"github.com/keel-relay/keel/relay/uploadbody"
	"github.com/keel-relay/keel/relay/uploadslots"
	"github.com/keel-relay/keel/storage"
)

// Options are the handler's settings.
type Options struct {
	// Root is true on the root server: a target not below it is refused with 404.
	Root bool
	// MaxBody bounds a PUT body (signature block included).
	MaxBody func() int64
	// BodyIdleTimeout cuts an upload that sends nothing for this long.
	BodyIdleTimeout time.Duration
	// MaxConcurrentUploads bounds uploads in progress; more wait for a slot. An upload takes
	// its slot once its signature block is read and checked (key, algorithm, TTL): a client
	// that cannot sign for the source never holds one.
	MaxConcurrentUploads int
	// MaxUploadsPerClient bounds the slots one client (an IPv4 address, or an IPv6 /64) holds
	// at once; more of its uploads wait, while other clients' uploads may take free slots.
	// 0: a quarter of MaxConcurrentUploads, at least 1.
	MaxUploadsPerClient int
	// MinUploadRate is the lowest average body rate, in bytes per second, an upload may keep
	// once BodyIdleTimeout has passed (counted from the start of the body for the signature
	// block, then again from the moment it takes its slot): a client trickling its body is cut
	// with 408 instead of holding an upload slot for as long as it likes, and a slot is held
	// at most BodyIdleTimeout + declared size / MinUploadRate. 0: no minimum.
	MinUploadRate int64
	// UploadSlotWait bounds the wait for an upload slot; beyond it the answer is 503 with
	// Retry-After. 0: wait as long as the client does.
	UploadSlotWait time.Duration
	// UploadPreemptRate: when uploads wait for a slot that no slot is free for, the holder
	// with the lowest average rate since it took its slot, if below this many bytes per
	// second and holding it for at least BodyIdleTimeout, is cut with 503 and Retry-After
	// to make room. 0: never.
	UploadPreemptRate int64
	// HeadTimeout bounds a HEAD asked of the next hop.
	HeadTimeout time.Duration
	// Metrics, when not nil, is where the upload-slot metrics are registered.
	Metrics *metrics.Registry
	// Pressure, when not nil, holds uploads back near the memory budget: they wait for their
	// slot as for a busy one, and get 503 with Retry-After if the pressure outlasts
	// UploadSlotWait.
	Pressure membudget.Pressure
}

// Handler serves the shared-files routes.
type Handler struct {
	opts   Options
	store  *storage.Store
	nodes  func() *nodemap.Map
	hops   *forward.Hops
	queued func() // wakes the forward worker
	log    *slog.Logger
	slots  *uploadslots.Pool
	m      *handlerMetrics // nil: none
	now    func() time.Time
}

// handlerMetrics count what happens to uploads around their slots.
type handlerMetrics struct {
	refused   *metrics.CounterVec // by reason, before any slot was taken
	slotWaits *metrics.CounterVec // by result: busy, gone, stopping
	preempted metrics.Counter
}

// New returns a handler. queued is called after a forward job is committed.
func New(opts Options, store *storage.Store, nodes func() *nodemap.Map, hops *forward.Hops, queued func(), log *slog.Logger) *Handler {
	opts.MaxConcurrentUploads = max(opts.MaxConcurrentUploads, 1)
	if opts.MaxUploadsPerClient <= 0 {
		opts.MaxUploadsPerClient = max(opts.MaxConcurrentUploads/4, 1)
	}
	if opts.HeadTimeout <= 0 {
		opts.HeadTimeout = 5 * time.Second
	}
	h := &Handler{
		opts: opts, store: store, nodes: nodes, hops: hops, queued: queued, log: log, now: time.Now,
		slots: uploadslots.New(uploadslots.Options{
			Slots: opts.MaxConcurrentUploads, PerClient: opts.MaxUploadsPerClient,
			PreemptBelow: opts.UploadPreemptRate, PreemptAfter: opts.BodyIdleTimeout,
			Pressure: opts.Pressure,
		}),
	}
	if reg := opts.Metrics; reg != nil {
		h.m = &handlerMetrics{
			refused: reg.Counter("keel_upload_block_refusals_total",
				"Shared-file uploads refused on their signature block (malformed, key not the source's, TTL), before taking an upload slot, by reason (block, key, ttl).", "reason").
				Init([]string{"block", "key", "ttl"}),
			slotWaits: reg.Counter("keel_upload_slot_refusals_total",
				"Shared-file uploads that got no upload slot, by reason (busy: none came free in time; memory: the relay stayed near its memory budget; gone: the client closed while waiting; stopping: the relay began to drain).", "reason").
				Init([]string{"busy", "memory", "gone", "stopping"}),
			preempted: reg.Counter("keel_upload_preempted_total",
				"Shared-file uploads cut to make room for waiting ones (below http.upload_preempt_rate).").With(),
		}
		reg.GaugeFunc("keel_upload_slots_in_use", "Upload slots held by uploads in progress.", func() float64 {
			held, _ := h.slots.InUse()
			return float64(held)
		})
		reg.GaugeFunc("keel_upload_slots_waiting", "Uploads waiting for an upload slot.", func() float64 {
			_, waiting := h.slots.InUse()
			return float64(waiting)
		})
	}
	return h
}

// Drain makes uploads waiting for a slot, and any that would have to wait after, answer 503
// at once (the relay is stopping); uploads in their slot go on, and one that finds a free slot
// takes it.
func (h *Handler) Drain() { h.slots.Close() }

// Slots is the relay's pool of upload slots, which agents' uploads share with shared files.
func (h *Handler) Slots() *uploadslots.Pool { return h.slots }

// refusedBeforeSlot counts an upload refused before it took a slot.
func (h *Handler) refusedBeforeSlot(reason string) {
	if h.m != nil {
		h.m.refused.With(reason).Inc()
	}
}

// fileKey validates the route parameters.
func fileKey(ps httprouter.Params) (storage.FileKey, error) {
	k := storage.FileKey{Target: ps.ByName("target"), Source: ps.ByName("source"), ID: ps.ByName("file")}
	if err := ids.ValidNodeID(k.Target); err != nil {
		return k, fmt.Errorf("target: %w", err)
	}
	if err := ids.ValidNodeID(k.Source); err != nil {
		return k, fmt.Errorf("source: %w", err)
	}
	if err := ids.ValidFileID(k.ID); err != nil {
		return k, fmt.Errorf("file id: %w", err)
	}
	return k, nil
}

// requestKey returns the file the route names, or answers 400 and returns false.
func requestKey(w http.ResponseWriter, r *http.Request, ps httprouter.Params) (storage.FileKey, bool) {
	k, err := fileKey(ps)
	if err != nil {
		uploadbody.Reply(w, r, http.StatusBadRequest, err.Error())
		return k, false
	}
	return k, true
}

// destination is where a file for target goes from here.
type destination struct {
	local   bool
	nextHop string // sub-relay id, or "" for upstream (when !local)
}

// route decides where a file for target goes, or returns false when it goes nowhere (root and
// target unknown).
func (h *Handler) route(m *nodemap.Map, target string) (destination, bool) {
	r := m.Route(target)
	switch r.Kind {
	case nodemap.Mine:
		return destination{local: true}, true
	case nodemap.BelowSubRelay:
		return destination{nextHop: r.Via}, true
	default:
		if h.opts.Root {
			return destination{}, false
		}
		return destination{}, true
	}
}
