// Package sharedfiles serves the shared-files part of the relay API: PUT (signed upload,
// stored for a node of this relay or queued for the next hop), HEAD (hash compare, asked of the
// next hop when the target is not here) and GET (download by the target node).
package sharedfiles

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/internal/membudget"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/ids"
	"github.com/keel-relay/keel/internal/wire/keyhash"
	"github.com/keel-relay/keel/internal/wire/reqauth"
	"github.com/keel-relay/keel/internal/wire/sigblock"
	"github.com/keel-relay/keel/internal/wire/ttl"
	"github.com/keel-relay/keel/relay/forward"
	"github.com/keel-relay/keel/relay/nodemap"
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
	preempted *metrics.Counter
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
				"Shared-file uploads refused on their signature block (malformed, key not the source's, TTL), before taking an upload slot, by reason (block, key, ttl).", "reason"),
			slotWaits: reg.Counter("keel_upload_slot_refusals_total",
				"Shared-file uploads that got no upload slot, by reason (busy: none came free in time; memory: the relay stayed near its memory budget; gone: the client closed while waiting; stopping: the relay began to drain).", "reason"),
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

// refusedBeforeSlot counts an upload refused before it took a slot.
func (h *Handler) refusedBeforeSlot(reason string) {
	if h.m != nil {
		h.m.refused.With(reason).Inc()
	}
}

// reply writes a one-line plain-text answer; every answer, HEAD included, has a length.
func reply(w http.ResponseWriter, r *http.Request, code int, msg string) {
	body := msg + "\n"
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(code)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
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

// Put handles PUT /shared-files/:target/:source/:file.
func (h *Handler) Put(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	k, err := fileKey(ps)
	if err != nil {
		reply(w, r, http.StatusBadRequest, err.Error())
		return
	}
	log := h.log.With("file", k.String(), "peer", r.RemoteAddr)
	maxBody := h.opts.MaxBody()
	if r.ContentLength > maxBody {
		reply(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d", r.ContentLength, maxBody))
		return
	}
	var lifetime time.Duration
	if q := r.URL.Query().Get("ttl"); q != "" {
		if lifetime, err = ttl.Parse(q); err != nil {
			reply(w, r, http.StatusBadRequest, "ttl: "+err.Error())
			return
		}
	}
	m := h.nodes()
	dest, ok := h.route(m, k.Target)
	if !ok {
		reply(w, r, http.StatusNotFound, fmt.Sprintf("target %s is not below this relay", k.Target))
		return
	}
	pin, err := sourcePin(m, k.Source)
	if err != nil {
		log.Warn("shared file refused", "reason", err)
		reply(w, r, http.StatusForbidden, err.Error())
		return
	}

	// The signature block is read and checked before an upload slot is taken: a client that
	// cannot sign for the source (wrong key, bad block, no TTL) never holds one. Reading it is
	// bounded like the rest of the body (sigblock.MaxSize, body_idle_timeout, min_upload_rate)
	// and buffers little: a small read buffer, then the block itself.
	body := &bodyReader{r: http.MaxBytesReader(w, r.Body, maxBody), rc: http.NewResponseController(w),
		idle: h.opts.BodyIdleTimeout, minRate: h.opts.MinUploadRate, start: time.Now()}
	br := bufio.NewReaderSize(body, blockReadBuffer)
	block, err := sigblock.Read(br)
	if err != nil {
		code, msg := bodyError(err, maxBody)
		if code == http.StatusBadRequest {
			msg = "signature block: " + err.Error()
		}
		h.refusedBeforeSlot("block")
		reply(w, r, code, msg)
		return
	}
	if !pin.MatchRSA(block.PublicKey) {
		err := fmt.Errorf("the key in the signature block is not the key of source node %s", k.Source)
		log.Warn("shared file refused", "reason", err)
		h.refusedBeforeSlot("key")
		reply(w, r, http.StatusForbidden, err.Error())
		return
	}
	if lifetime == 0 {
		if block.TTL == "" {
			h.refusedBeforeSlot("ttl")
			reply(w, r, http.StatusBadRequest, "ttl: missing (give ?ttl= or a ttl line in the signature block)")
			return
		}
		if lifetime, err = ttl.Parse(block.TTL); err != nil {
			h.refusedBeforeSlot("ttl")
			reply(w, r, http.StatusBadRequest, "ttl: "+err.Error())
			return
		}
	}
	// The block is stored and forwarded with the relay's hash_value and expires lines: it must
	// still fit a next hop's limit with them (a hash of the algorithm's length stands in).
	if _, err := sigblock.Relayed(block.Raw, strings.Repeat("0", 2*block.Hash.Size()), h.now().Add(lifetime).Unix()); err != nil {
		h.refusedBeforeSlot("block")
		reply(w, r, http.StatusBadRequest, "signature block: "+err.Error())
		return
	}
	blockBytes := body.received - int64(br.Buffered())
	// While it waits for a slot, the upload keeps what it needs of its block: its bytes (Raw,
	// stored with the file) and the parsed key, digest and lines used below; the copy of every
	// line in Fields would double what a block padded to sigblock.MaxSize keeps.
	block.Fields = nil

	client := uploadslots.ClientOf(r.RemoteAddr)
	slot, err := h.slots.Acquire(r.Context(), client, h.opts.UploadSlotWait, body.preempt)
	if err != nil {
		h.noSlot(w, r, log, client, err)
		return
	}
	defer slot.Release()
	// From here the slot's clock runs: min_upload_rate counts again from now, so that a slot
	// is held at most body_idle_timeout + the rest of the declared body / min_upload_rate.
	body.holdSlot(slot)

	size := int64(-1)
	if r.ContentLength > 0 {
		size = r.ContentLength - blockBytes
	}
	up, err := h.store.NewUpload(size)
	if err != nil {
		h.storeFailed(w, r, log, err)
		return
	}
	hasher := block.NewHash()
	// The body is read straight into the upload's chunk buffer (large reads from the
	// connection once the read buffer is drained) and hashed there; no copy buffer between.
	// The store writes a full chunk in the background while the next one is read and hashed.
	if _, err := up.ReadFrom(io.TeeReader(bodySource{br}, hasher)); err != nil {
		up.Abort()
		if !errors.As(err, new(bodyReadError)) {
			h.storeFailed(w, r, log, err)
			return
		}
		if errors.Is(err, errPreempted) {
			log.Warn("upload cut to make room for waiting uploads", "client", client.String(), "received", up.Size(),
				"rate", fmt.Sprintf("%.0fB/s", slot.Rate()), "held", time.Since(slot.Since()).Round(time.Millisecond))
			if h.m != nil {
				h.m.preempted.Inc()
			}
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
			reply(w, r, http.StatusServiceUnavailable, fmt.Sprintf("upload cut: every upload slot was in use and other uploads were waiting; this one was the slowest (%.0f bytes/s, below http.upload_preempt_rate); nothing was stored; retry later", slot.Rate()))
			return
		}
		code, msg := bodyError(err, maxBody)
		log.Warn("upload cut", "err", err, "received", up.Size())
		reply(w, r, code, msg)
		return
	}
	sum := hasher.Sum(nil)
	if err := block.Verify(sum); err != nil {
		up.Abort()
		log.Warn("shared file refused: bad signature", "reason", err)
		reply(w, r, http.StatusForbidden, "signature does not verify over the file with the source's key")
		return
	}
	hash := hex.EncodeToString(sum)
	if block.HashValue != "" && !strings.EqualFold(block.HashValue, hash) {
		log.Warn("the client's hash_value differs from the content's hash; storing the computed one", "client", block.HashValue, "computed", hash)
	}
	now := h.now()
	expires := now.Add(lifetime)
	// The client's hash_value and expires lines never reach storage: the block is stored and
	// forwarded with the relay's values.
	header, err := sigblock.Relayed(block.Raw, hash, expires.Unix())
	if err != nil { // checked before the slot with values of the same length
		up.Abort()
		reply(w, r, http.StatusBadRequest, "signature block: "+err.Error())
		return
	}
	if dest.local {
		meta := storage.FileMeta{Key: k, Header: header, Algorithm: block.Algorithm, Hash: hash, Expires: expires, Stored: now}
		if err := h.store.CommitFile(up, meta); err != nil {
			h.storeFailed(w, r, log, err)
			return
		}
		log.Info("shared file stored", "bytes", up.Size(), "expires", expires.UTC().Format(time.RFC3339))
		reply(w, r, http.StatusOK, "stored")
		return
	}
	job := storage.Job{File: k, Header: header, NextHop: dest.nextHop, Expires: expires}
	if err := h.store.Enqueue(up, job); err != nil {
		h.storeFailed(w, r, log, err)
		return
	}
	h.queued()
	log.Info("shared file queued for forwarding", "bytes", up.Size(), "hop", hopName(dest.nextHop))
	reply(w, r, http.StatusOK, "queued for "+hopName(dest.nextHop))
}

// noSlot answers an upload that got no slot: 503 with Retry-After, saying why; nothing was
// stored.
func (h *Handler) noSlot(w http.ResponseWriter, r *http.Request, log *slog.Logger, client uploadslots.Client, err error) {
	o := h.slots.Options()
	held, _ := h.slots.InUse()
	var msg, reason string
	switch {
	case errors.Is(err, uploadslots.ErrClosed):
		reason = "stopping"
		log.Info("upload refused: the relay is stopping")
		msg = "the relay is stopping; nothing was stored; retry later"
	case errors.Is(err, uploadslots.ErrGone):
		// net/http cancels a request's context when it reads the end of the client's side; a
		// client that half-closed may still read this answer.
		reason = "gone"
		log.Info("upload refused: the connection was closed while it waited for a slot")
		msg = "the connection was closed while the upload waited for an upload slot; nothing was stored; retry later"
	case errors.Is(err, uploadslots.ErrMemory):
		reason = "memory"
		log.Warn("upload refused: the relay stayed near its memory budget", "waited", h.opts.UploadSlotWait)
		msg = fmt.Sprintf("busy: the relay stayed near its memory budget for %s; nothing was stored; retry later", h.opts.UploadSlotWait)
	case held < o.Slots && h.slots.Held(client) >= o.PerClient:
		reason = "busy"
		log.Warn("upload refused: the client's share of upload slots stayed in use", "client", client.String(), "share", o.PerClient, "waited", h.opts.UploadSlotWait)
		msg = fmt.Sprintf("busy: your address (%s) already has %d uploads in progress (http.max_uploads_per_client) and none ended within %s; nothing was stored; retry later", client, o.PerClient, h.opts.UploadSlotWait)
	default:
		reason = "busy"
		log.Warn("upload refused: no upload slot", "waited", h.opts.UploadSlotWait, "slots", o.Slots)
		msg = fmt.Sprintf("busy: all %d upload slots stayed in use for %s; nothing was stored; retry later", o.Slots, h.opts.UploadSlotWait)
	}
	if h.m != nil {
		h.m.slotWaits.With(reason).Inc()
	}
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	reply(w, r, http.StatusServiceUnavailable, msg)
}

func hopName(nextHop string) string {
	if nextHop == "" {
		return "upstream"
	}
	return "sub-relay " + nextHop
}

// sourcePin returns the key pin of the source node, refusing unknown or keyless sources.
func sourcePin(m *nodemap.Map, source string) (keyhash.Pin, error) {
	node, ok := m.Node(source)
	if !ok {
		return keyhash.Pin{}, fmt.Errorf("source node %s is unknown to this relay", source)
	}
	pin, err := keyhash.Parse(node.KeyHash)
	if err != nil {
		return keyhash.Pin{}, fmt.Errorf("source node %s has no usable key-hash in the node map", source)
	}
	return pin, nil
}

// bodyReadError is an error reading the body (as opposed to the store's) during the copy
// into the store; its message is the read error's.
type bodyReadError struct{ err error }

func (e bodyReadError) Error() string { return e.err.Error() }
func (e bodyReadError) Unwrap() error { return e.err }

// bodySource tags the body's read errors as bodyReadError.
type bodySource struct{ r io.Reader }

func (bs bodySource) Read(p []byte) (int, error) {
	n, err := bs.r.Read(p)
	if err != nil && err != io.EOF {
		err = bodyReadError{err}
	}
	return n, err
}

func (h *Handler) storeFailed(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	switch {
	case errors.Is(err, storage.ErrQueueFull), errors.Is(err, storage.ErrNoSpace), isNoSpace(err):
		// The log has the details (free bytes, data directory); the client gets no paths.
		log.Error("shared file refused: no room", "err", err)
		full := "the relay's disk is full"
		if errors.Is(err, storage.ErrQueueFull) {
			full = "the forward queue is full"
		}
		reply(w, r, http.StatusInsufficientStorage, "insufficient storage: "+full+"; nothing was stored")
	default:
		log.Error("shared file not stored", "err", err)
		reply(w, r, http.StatusInternalServerError, "storage failure; nothing was stored")
	}
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device")
}

// bodyError maps an error reading the request body to a status and message.
func bodyError(err error, maxBody int64) (int, string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", maxBody)
	case errors.Is(err, errTooSlow):
		return http.StatusRequestTimeout, err.Error()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusRequestTimeout, "upload stalled: no data received in time"
	case errors.Is(err, sigblock.ErrMalformed):
		return http.StatusBadRequest, err.Error()
	default:
		return http.StatusBadRequest, "reading the body failed: " + err.Error()
	}
}

// retryAfterSeconds is the Retry-After of a 503 for want of an upload slot.
const retryAfterSeconds = 10

// blockReadBuffer is the read buffer of an upload's body while its signature block is read
// (before it has a slot, so per connection: kept small).
const blockReadBuffer = 4 << 10

// errPreempted ends an upload that was cut to make room for waiting ones.
var errPreempted = errors.New("upload cut to make room for waiting uploads")

// errTooSlow ends an upload whose body came in below the minimum rate.
var errTooSlow = errors.New("upload too slow: the body came in below http.min_upload_rate")

// bodyReader sets the connection's read deadline before every read of an upload's body to
// the earlier of two: idle after now (a client that stops sending is cut), and, with a
// minimum rate, the time by which the bytes received so far were due (idle after the start,
// plus one second per minRate bytes): a client trickling its body is cut too, as Apache's
// mod_reqtimeout MinRate does, while a steady one of any size is not.
//
// Once the upload holds a slot (holdSlot), the rate counts from then on, every byte is
// reported to the slot, and the upload pool may cut it (preempt): the read deadline is then
// set in the past, and reads fail with errPreempted.
type bodyReader struct {
	r        io.Reader
	rc       *http.ResponseController
	idle     time.Duration
	minRate  int64 // bytes per second; 0 = none
	start    time.Time
	received int64
	slot     *uploadslots.Slot

	mu  sync.Mutex // serialises setting the read deadline with preempt
	cut bool
}

// holdSlot starts the slot's part of the upload: the minimum rate is counted afresh from now.
func (br *bodyReader) holdSlot(slot *uploadslots.Slot) {
	br.slot, br.start, br.received = slot, time.Now(), 0
}

// preempt cuts the upload: its read in progress, if any, and every later one fail. The pool
// calls it from another goroutine, while the handler holds its slot.
func (br *bodyReader) preempt() {
	br.mu.Lock()
	defer br.mu.Unlock()
	br.cut = true
	_ = br.rc.SetReadDeadline(time.Unix(1, 0))
}

func (br *bodyReader) Read(p []byte) (int, error) {
	br.mu.Lock()
	if br.cut {
		br.mu.Unlock()
		return 0, errPreempted
	}
	now := time.Now()
	var deadline time.Time
	if br.idle > 0 {
		deadline = now.Add(br.idle)
	}
	rateBound := false
	if br.minRate > 0 {
		grace := br.idle
		if grace <= 0 {
			grace = 30 * time.Second
		}
		due := br.start.Add(grace + time.Duration(float64(br.received)/float64(br.minRate)*float64(time.Second)))
		if deadline.IsZero() || due.Before(deadline) {
			deadline, rateBound = due, true
		}
	}
	if !deadline.IsZero() {
		_ = br.rc.SetReadDeadline(deadline)
	}
	br.mu.Unlock()
	n, err := br.r.Read(p)
	br.received += int64(n)
	if br.slot != nil {
		br.slot.Add(int64(n))
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		br.mu.Lock()
		cut := br.cut
		br.mu.Unlock()
		switch {
		case cut:
			err = fmt.Errorf("%w: %w", errPreempted, err)
		case rateBound:
			err = fmt.Errorf("%w (%d bytes in %s, minimum %d bytes/s): %w", errTooSlow, br.received, time.Since(br.start).Round(time.Millisecond), br.minRate, err)
		}
	}
	return n, err
}

// idleWriter extends the connection's write deadline before every write.
type idleWriter struct {
	w    io.Writer
	rc   *http.ResponseController
	idle time.Duration
}

func (iw *idleWriter) Write(p []byte) (int, error) {
	if iw.idle > 0 {
		_ = iw.rc.SetWriteDeadline(time.Now().Add(iw.idle))
	}
	return iw.w.Write(p)
}

// Head handles HEAD /shared-files/:target/:source/:file?hash=<hex>.
func (h *Handler) Head(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	k, err := fileKey(ps)
	if err != nil {
		reply(w, r, http.StatusBadRequest, err.Error())
		return
	}
	hash := r.URL.Query().Get("hash")
	if hash == "" {
		reply(w, r, http.StatusBadRequest, "hash: missing")
		return
	}
	if _, err := hex.DecodeString(hash); err != nil || len(hash) > 256 {
		reply(w, r, http.StatusBadRequest, fmt.Sprintf("hash: %q is not a hex digest", hash))
		return
	}
	dest, ok := h.route(h.nodes(), k.Target)
	if !ok {
		reply(w, r, http.StatusNotFound, "")
		return
	}
	if dest.local {
		meta, err := h.store.StatFile(k)
		if err != nil || !meta.Expires.After(h.now()) || !strings.EqualFold(meta.Hash, hash) {
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				h.log.Error("HEAD: read metadata", "file", k.String(), "err", err)
				reply(w, r, http.StatusInternalServerError, "")
				return
			}
			reply(w, r, http.StatusNotFound, "")
			return
		}
		fileHeaders(w, meta)
		w.WriteHeader(http.StatusOK)
		return
	}
	hop, err := h.hops.Resolve(dest.nextHop)
	if err != nil {
		h.log.Warn("HEAD: next hop unusable", "file", k.String(), "err", err)
		reply(w, r, http.StatusBadGateway, "")
		return
	}
	// Not cancelled with the request: net/http cancels it when a client half-closes its side
	// (golang/go#18527), and such a client still reads the answer. HeadTimeout bounds it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.opts.HeadTimeout)
	defer cancel()
	status, hdr, err := forward.Head(ctx, hop, k, hash)
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, context.DeadlineExceeded) {
			code = http.StatusGatewayTimeout
		}
		h.log.Warn("HEAD: next hop unreachable", "file", k.String(), "hop", hop.Name(), "err", err)
		reply(w, r, code, "")
		return
	}
	switch status {
	case http.StatusOK:
		for _, name := range []string{"Content-Length", "ETag", "Last-Modified", "Expires"} {
			if v := hdr.Get(name); v != "" {
				w.Header().Set(name, v)
			}
		}
		if w.Header().Get("Content-Length") == "" {
			w.Header().Set("Content-Length", "0")
		}
		w.WriteHeader(http.StatusOK)
	case http.StatusNotFound:
		reply(w, r, http.StatusNotFound, "")
	default:
		// Anything else from the next hop is its trouble, not an answer about the file.
		h.log.Warn("HEAD: next hop answered", "file", k.String(), "hop", hop.Name(), "status", status)
		reply(w, r, http.StatusBadGateway, "")
	}
}

func fileHeaders(w http.ResponseWriter, meta storage.FileMeta) {
	w.Header().Set("Content-Length", strconv.FormatInt(meta.Size, 10))
	w.Header().Set("ETag", `"`+meta.Hash+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Last-Modified", meta.Stored.UTC().Format(http.TimeFormat))
	w.Header().Set("Expires", meta.Expires.UTC().Format(http.TimeFormat))
	w.Header().Set("Keel-Hash-Algorithm", meta.Algorithm)
}

// Get handles GET /shared-files/:target/:source/:file: only the target node, proving its
// identity with a request signed by its key (package reqauth), may download.
func (h *Handler) Get(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	k, err := fileKey(ps)
	if err != nil {
		reply(w, r, http.StatusBadRequest, err.Error())
		return
	}
	m := h.nodes()
	caller, err := reqauth.Verify(r, func(id string) (keyhash.Pin, bool) {
		node, ok := m.Node(id)
		if !ok {
			return keyhash.Pin{}, false
		}
		pin, err := keyhash.Parse(node.KeyHash)
		return pin, err == nil
	}, h.now(), reqauth.DefaultWindow)
	if err != nil {
		h.log.Warn("GET refused", "file", k.String(), "peer", r.RemoteAddr, "reason", err)
		reply(w, r, http.StatusForbidden, err.Error())
		return
	}
	if caller != k.Target {
		h.log.Warn("GET refused: caller is not the target", "file", k.String(), "caller", caller)
		reply(w, r, http.StatusForbidden, fmt.Sprintf("node %s is not the target of this file", caller))
		return
	}
	meta, content, err := h.store.OpenFile(k)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			reply(w, r, http.StatusNotFound, "no such file")
			return
		}
		h.log.Error("GET: open file", "file", k.String(), "err", err)
		reply(w, r, http.StatusInternalServerError, "storage failure")
		return
	}
	defer content.Close()
	if !meta.Expires.After(h.now()) {
		reply(w, r, http.StatusNotFound, "no such file")
		return
	}
	fileHeaders(w, meta)
	w.WriteHeader(http.StatusOK)
	// A reader that stops reading is cut after the idle timeout: it would otherwise pin a
	// store snapshot and a connection forever.
	out := &idleWriter{w: w, rc: http.NewResponseController(w), idle: h.opts.BodyIdleTimeout}
	if _, err := io.Copy(out, content); err != nil {
		h.log.Warn("GET: transfer cut", "file", k.String(), "err", err)
	}
}
