package sharedfiles

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/internal/wire/keyhash"
	"github.com/keel-relay/keel/internal/wire/sigblock"
	"github.com/keel-relay/keel/internal/wire/ttl"
	"github.com/keel-relay/keel/relay/nodemap"
	"github.com/keel-relay/keel/relay/uploadbody"
	"github.com/keel-relay/keel/relay/uploadslots"
	"github.com/keel-relay/keel/storage"
)

// Put handles PUT /shared-files/:target/:source/:file, in steps that each answer the client
// themselves when they refuse: the path, size and ttl are checked and the target routed
// (putRequest); the signature block is read and checked before any slot is taken
// (readBlock); the upload takes its slot (takeSlot); the body goes into the store, hashed,
// and the signature is verified over it (receive); the file is stored here or queued for
// the next hop, and the answer says which (commit).
func (h *Handler) Put(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	u, ok := h.putRequest(w, r, ps)
	if !ok {
		return
	}
	if !h.readBlock(w, r, u) {
		return
	}
	slot, ok := h.takeSlot(w, r, u)
	if !ok {
		return
	}
	defer slot.Release()
	f, ok := h.receive(w, r, u, slot)
	if !ok {
		return
	}
	h.commit(w, r, u, f)
}

// upload is one PUT on its way through Put's steps: what each step found, for the next.
type upload struct {
	key      storage.FileKey
	log      *slog.Logger
	maxBody  int64
	lifetime time.Duration // from ?ttl=, else (readBlock) from the block's ttl line
	dest     destination
	pin      keyhash.Pin // the source node's key

	// Set by readBlock.
	body       *uploadbody.Reader
	br         *bufio.Reader // the body, buffered; at the file's first byte once the block is read
	block      *sigblock.Block
	blockBytes int64 // bytes of the body the block took

	// Set by takeSlot.
	client uploadslots.Client
}

// received is an upload's file, in the store but not yet committed, its signature verified.
type received struct {
	up      *storage.Upload
	hash    string // hex, computed over the content
	header  []byte // the block as stored and forwarded, with the relay's hash_value and expires
	stored  time.Time
	expires time.Time
}

// putRequest checks what the request says before its body is read: the path, the declared
// size, the ttl query, where the target is, and that the source node has a key here.
func (h *Handler) putRequest(w http.ResponseWriter, r *http.Request, ps httprouter.Params) (*upload, bool) {
	k, ok := requestKey(w, r, ps)
	if !ok {
		return nil, false
	}
	u := &upload{key: k, log: h.log.With("file", k.String(), "peer", r.RemoteAddr), maxBody: h.opts.MaxBody()}
	if r.ContentLength > u.maxBody {
		uploadbody.Reply(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d", r.ContentLength, u.maxBody))
		return nil, false
	}
	var err error
	if q := r.URL.Query().Get("ttl"); q != "" {
		if u.lifetime, err = ttl.Parse(q); err != nil {
			uploadbody.Reply(w, r, http.StatusBadRequest, "ttl: "+err.Error())
			return nil, false
		}
	}
	m := h.nodes()
	if u.dest, ok = h.route(m, k.Target); !ok {
		uploadbody.Reply(w, r, http.StatusNotFound, fmt.Sprintf("target %s is not below this relay", k.Target))
		return nil, false
	}
	if u.pin, err = sourcePin(m, k.Source); err != nil {
		u.log.Warn("shared file refused", "reason", err)
		uploadbody.Reply(w, r, http.StatusForbidden, err.Error())
		return nil, false
	}
	return u, true
}

// readBlock reads the signature block and checks it before an upload slot is taken: a client
// that cannot sign for the source (wrong key, bad block, no TTL) never holds one. Reading it
// is bounded like the rest of the body (sigblock.MaxSize, body_idle_timeout,
// min_upload_rate) and buffers little: a small read buffer, then the block itself.
func (h *Handler) readBlock(w http.ResponseWriter, r *http.Request, u *upload) bool {
	u.body = uploadbody.NewReader(http.MaxBytesReader(w, r.Body, u.maxBody), http.NewResponseController(w),
		h.opts.BodyIdleTimeout, h.opts.MinUploadRate)
	u.br = bufio.NewReaderSize(u.body, blockReadBuffer)
	block, err := sigblock.Read(u.br)
	if err != nil {
		code, msg := bodyError(err, u.maxBody)
		if code == http.StatusBadRequest {
			msg = "signature block: " + err.Error()
		}
		h.refusedBeforeSlot("block")
		uploadbody.Reply(w, r, code, msg)
		return false
	}
	if !u.pin.MatchRSA(block.PublicKey) {
		err := fmt.Errorf("the key in the signature block is not the key of source node %s", u.key.Source)
		u.log.Warn("shared file refused", "reason", err)
		h.refusedBeforeSlot("key")
		uploadbody.Reply(w, r, http.StatusForbidden, err.Error())
		return false
	}
	if u.lifetime == 0 {
		if block.TTL == "" {
			h.refusedBeforeSlot("ttl")
			uploadbody.Reply(w, r, http.StatusBadRequest, "ttl: missing (give ?ttl= or a ttl line in the signature block)")
			return false
		}
		if u.lifetime, err = ttl.Parse(block.TTL); err != nil {
			h.refusedBeforeSlot("ttl")
			uploadbody.Reply(w, r, http.StatusBadRequest, "ttl: "+err.Error())
			return false
		}
	}
	// The block is stored and forwarded with the relay's hash_value and expires lines: it must
	// still fit a next hop's limit with them (a hash of the algorithm's length stands in).
	if _, err := sigblock.Relayed(block.Raw, strings.Repeat("0", 2*block.Hash.Size()), h.now().Add(u.lifetime).Unix()); err != nil {
		h.refusedBeforeSlot("block")
		uploadbody.Reply(w, r, http.StatusBadRequest, "signature block: "+err.Error())
		return false
	}
	u.blockBytes = u.body.Received() - int64(u.br.Buffered())
	// While it waits for a slot, the upload keeps what it needs of its block: its bytes (Raw,
	// stored with the file) and the parsed key, digest and lines used below; the copy of every
	// line in Fields would double what a block padded to sigblock.MaxSize keeps.
	block.Fields = nil
	u.block = block
	return true
}

// takeSlot waits for an upload slot (answering 503 when none comes); from then on the slot's
// clock runs: min_upload_rate counts again from now, so that a slot is held at most
// body_idle_timeout + the rest of the declared body / min_upload_rate.
func (h *Handler) takeSlot(w http.ResponseWriter, r *http.Request, u *upload) (*uploadslots.Slot, bool) {
	u.client = uploadslots.ClientOf(r.RemoteAddr)
	slot, err := h.slots.Acquire(r.Context(), u.client, h.opts.UploadSlotWait, u.body.Preempt)
	if err != nil {
		h.noSlot(w, r, u.log, u.client, err)
		return nil, false
	}
	u.body.HoldSlot(slot)
	return slot, true
}

// receive reads the rest of the body into a new upload of the store, hashing it, verifies the
// block's signature over the hash and makes the block the relay stores and forwards. On a
// refusal the upload is aborted: nothing is stored.
func (h *Handler) receive(w http.ResponseWriter, r *http.Request, u *upload, slot *uploadslots.Slot) (received, bool) {
	size := int64(-1)
	if r.ContentLength > 0 {
		size = r.ContentLength - u.blockBytes
	}
	up, err := h.store.NewUpload(size)
	if err != nil {
		h.storeFailed(w, r, u.log, err)
		return received{}, false
	}
	hasher := u.block.NewHash()
	// The body is read straight into the upload's chunk buffer (large reads from the
	// connection once the read buffer is drained) and hashed there; no copy buffer between.
	// The store writes a full chunk in the background while the next one is read and hashed.
	if _, err := up.ReadFrom(io.TeeReader(uploadbody.Source{R: u.br}, hasher)); err != nil {
		up.Abort()
		h.bodyCut(w, r, u, up, slot, err)
		return received{}, false
	}
	sum := hasher.Sum(nil)
	if err := u.block.Verify(sum); err != nil {
		up.Abort()
		u.log.Warn("shared file refused: bad signature", "reason", err)
		uploadbody.Reply(w, r, http.StatusForbidden, "signature does not verify over the file with the source's key")
		return received{}, false
	}
	f := received{up: up, hash: hex.EncodeToString(sum)}
	if u.block.HashValue != "" && !strings.EqualFold(u.block.HashValue, f.hash) {
		u.log.Warn("the client's hash_value differs from the content's hash; storing the computed one", "client", u.block.HashValue, "computed", f.hash)
	}
	f.stored = h.now()
	f.expires = f.stored.Add(u.lifetime)
	// The client's hash_value and expires lines never reach storage: the block is stored and
	// forwarded with the relay's values.
	if f.header, err = sigblock.Relayed(u.block.Raw, f.hash, f.expires.Unix()); err != nil { // checked before the slot with values of the same length
		up.Abort()
		uploadbody.Reply(w, r, http.StatusBadRequest, "signature block: "+err.Error())
		return received{}, false
	}
	return f, true
}

// bodyCut answers an upload whose copy into the store failed (the upload is already
// aborted): a store failure, a cut to make room for waiting uploads (503 with Retry-After),
// or a body that could not be read (too large, too slow, stalled, broken).
func (h *Handler) bodyCut(w http.ResponseWriter, r *http.Request, u *upload, up *storage.Upload, slot *uploadslots.Slot, err error) {
	if !errors.As(err, new(uploadbody.ReadError)) {
		h.storeFailed(w, r, u.log, err)
		return
	}
	if errors.Is(err, uploadbody.ErrPreempted) {
		u.log.Warn("upload cut to make room for waiting uploads", "client", u.client.String(), "received", up.Size(),
			"rate", fmt.Sprintf("%.0fB/s", slot.Rate()), "held", time.Since(slot.Since()).Round(time.Millisecond))
		if h.m != nil {
			h.m.preempted.Inc()
		}
		w.Header().Set("Retry-After", strconv.Itoa(uploadbody.RetryAfterSeconds))
		uploadbody.Reply(w, r, http.StatusServiceUnavailable, fmt.Sprintf("upload cut: every upload slot was in use and other uploads were waiting; this one was the slowest (%.0f bytes/s, below http.upload_preempt_rate); nothing was stored; retry later", slot.Rate()))
		return
	}
	code, msg := bodyError(err, u.maxBody)
	u.log.Warn("upload cut", "err", err, "received", up.Size())
	uploadbody.Reply(w, r, code, msg)
}

// commit stores the file for a node of this relay, or queues it for the next hop and wakes
// the forward worker, and answers which it was.
func (h *Handler) commit(w http.ResponseWriter, r *http.Request, u *upload, f received) {
	if u.dest.local {
		meta := storage.FileMeta{Key: u.key, Header: f.header, Algorithm: u.block.Algorithm, Hash: f.hash, Expires: f.expires, Stored: f.stored}
		if err := h.store.CommitFile(f.up, meta); err != nil {
			h.storeFailed(w, r, u.log, err)
			return
		}
		u.log.Info("shared file stored", "bytes", f.up.Size(), "expires", f.expires.UTC().Format(time.RFC3339))
		uploadbody.Reply(w, r, http.StatusOK, "stored")
		return
	}
	job := storage.Job{File: u.key, Header: f.header, NextHop: u.dest.nextHop, Expires: f.expires}
	if err := h.store.Enqueue(f.up, job); err != nil {
		h.storeFailed(w, r, u.log, err)
		return
	}
	h.queued()
	u.log.Info("shared file queued for forwarding", "bytes", f.up.Size(), "hop", hopName(u.dest.nextHop))
	uploadbody.Reply(w, r, http.StatusOK, "queued for "+hopName(u.dest.nextHop))
}

// noSlot answers an upload that got no slot: 503 with Retry-After, saying why; nothing was
// stored.
func (h *Handler) noSlot(w http.ResponseWriter, r *http.Request, log *slog.Logger, client uploadslots.Client, err error) {
	reason, msg := uploadbody.NoSlot(log, h.slots, client, h.opts.UploadSlotWait, err)
	if h.m != nil {
		h.m.slotWaits.With(reason).Inc()
	}
	w.Header().Set("Retry-After", strconv.Itoa(uploadbody.RetryAfterSeconds))
	uploadbody.Reply(w, r, http.StatusServiceUnavailable, msg)
}

// hopName names the next hop in logs and answers.
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

// storeFailed answers an upload the store could not take: 507 when the disk or the forward
// queue is full, else 500; nothing was stored.
func (h *Handler) storeFailed(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	switch {
	case errors.Is(err, storage.ErrQueueFull), errors.Is(err, storage.ErrNoSpace), uploadbody.IsNoSpace(err):
		// The log has the details (free bytes, data directory); the client gets no paths.
		log.Error("shared file refused: no room", "err", err)
		full := "the relay's disk is full"
		if errors.Is(err, storage.ErrQueueFull) {
			full = "the forward queue is full"
		}
		uploadbody.Reply(w, r, http.StatusInsufficientStorage, "insufficient storage: "+full+"; nothing was stored")
	default:
		log.Error("shared file not stored", "err", err)
		uploadbody.Reply(w, r, http.StatusInternalServerError, "storage failure; nothing was stored")
	}
}

// bodyError maps an error reading the request body to a status and message.
// A malformed signature block is a 400 that says what is wrong with it.
func bodyError(err error, maxBody int64) (int, string) {
	code, msg := uploadbody.Status(err, maxBody)
	if code == http.StatusBadRequest && errors.Is(err, sigblock.ErrMalformed) {
		msg = err.Error()
	}
	return code, msg
}

// blockReadBuffer is the read buffer of an upload's body while its signature block is read
// (before it has a slot, so per connection: kept small).
const blockReadBuffer = 4 << 10
