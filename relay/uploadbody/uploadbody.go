// Package uploadbody reads the body of an upload (a shared file, an agent's inventory or
// report) under the relay's bounds: http.body_idle_timeout and http.min_upload_rate cut a
// client that stalls or trickles, the upload pool may cut one to make room (Reader), and the
// ways a body or a slot can fail are answered alike by every upload handler (Status, NoSlot,
// IsNoSpace).
package uploadbody

import (
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

	"github.com/keel-relay/keel/relay/uploadslots"
)

// ReadError is an error reading the body (as opposed to the store's) during the copy into
// the store; its message is the read error's.
type ReadError struct{ Err error }

func (e ReadError) Error() string { return e.Err.Error() }
func (e ReadError) Unwrap() error { return e.Err }

// Source tags the body's read errors as ReadError.
type Source struct{ R io.Reader }

func (bs Source) Read(p []byte) (int, error) {
	n, err := bs.R.Read(p)
	if err != nil && err != io.EOF {
		err = ReadError{err}
	}
	return n, err
}

// ErrPreempted ends an upload that was cut to make room for waiting ones.
var ErrPreempted = errors.New("upload cut to make room for waiting uploads")

// errTooSlow ends an upload whose body came in below the minimum rate.
var errTooSlow = errors.New("upload too slow: the body came in below http.min_upload_rate")

// Reader sets the connection's read deadline before every read of an upload's body to the
// earlier of two: idle after now (a client that stops sending is cut), and, with a minimum
// rate, the time by which the bytes received so far were due (idle after the start, plus one
// second per minRate bytes): a client trickling its body is cut too, as Apache's
// mod_reqtimeout MinRate does, while a steady one of any size is not.
//
// Once the upload holds a slot (HoldSlot), the rate counts from then on, every byte is
// reported to the slot, and the upload pool may cut it (Preempt): the read deadline is then
// set in the past, and reads fail with ErrPreempted.
type Reader struct {
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

// NewReader returns a Reader of r, the body of the request whose connection rc controls;
// idle is http.body_idle_timeout, minRate http.min_upload_rate in bytes per second (0: none).
// The rate counts from now.
func NewReader(r io.Reader, rc *http.ResponseController, idle time.Duration, minRate int64) *Reader {
	return &Reader{r: r, rc: rc, idle: idle, minRate: minRate, start: time.Now()}
}

// Received returns the bytes read since the start, or since HoldSlot.
func (br *Reader) Received() int64 { return br.received }

// HoldSlot starts the slot's part of the upload: the minimum rate is counted afresh from now.
func (br *Reader) HoldSlot(slot *uploadslots.Slot) {
	br.slot, br.start, br.received = slot, time.Now(), 0
}

// Preempt cuts the upload: its read in progress, if any, and every later one fail. The pool
// calls it from another goroutine, while the handler holds its slot.
func (br *Reader) Preempt() {
	br.mu.Lock()
	defer br.mu.Unlock()
	br.cut = true
	_ = br.rc.SetReadDeadline(time.Unix(1, 0))
}

func (br *Reader) Read(p []byte) (int, error) {
	br.mu.Lock()
	if br.cut {
		br.mu.Unlock()
		return 0, ErrPreempted
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
			err = fmt.Errorf("%w: %w", ErrPreempted, err)
		case rateBound:
			err = fmt.Errorf("%w (%d bytes in %s, minimum %d bytes/s): %w", errTooSlow, br.received, time.Since(br.start).Round(time.Millisecond), br.minRate, err)
		}
	}
	return n, err
}

// Status maps an error reading the request body to a status and message: 413 beyond
// maxBody (http.MaxBytesReader), 408 too slow or stalled, else 400.
func Status(err error, maxBody int64) (int, string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", maxBody)
	case errors.Is(err, errTooSlow):
		return http.StatusRequestTimeout, err.Error()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusRequestTimeout, "upload stalled: no data received in time"
	default:
		return http.StatusBadRequest, "reading the body failed: " + err.Error()
	}
}

// IsNoSpace says whether err is the file system's "no space left on device".
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device")
}

// RetryAfterSeconds is the Retry-After of a 503 for want of an upload slot.
const RetryAfterSeconds = 10

// NoSlot logs why an upload of client got no slot from pool (err from Acquire, after waiting
// at most wait) and returns the reason, a fixed metrics label (stopping, gone, memory, busy),
// and the message of the 503 it gets.
func NoSlot(log *slog.Logger, pool *uploadslots.Pool, client uploadslots.Client, wait time.Duration, err error) (reason, msg string) {
	o := pool.Options()
	held, _ := pool.InUse()
	switch {
	case errors.Is(err, uploadslots.ErrClosed):
		log.Info("upload refused: the relay is stopping")
		return "stopping", "the relay is stopping; nothing was stored; retry later"
	case errors.Is(err, uploadslots.ErrGone):
		// net/http cancels a request's context when it reads the end of the client's side; a
		// client that half-closed may still read this answer.
		log.Info("upload refused: the connection was closed while it waited for a slot")
		return "gone", "the connection was closed while the upload waited for an upload slot; nothing was stored; retry later"
	case errors.Is(err, uploadslots.ErrMemory):
		log.Warn("upload refused: the relay stayed near its memory budget", "waited", wait)
		return "memory", fmt.Sprintf("busy: the relay stayed near its memory budget for %s; nothing was stored; retry later", wait)
	case held < o.Slots && pool.Held(client) >= o.PerClient:
		log.Warn("upload refused: the client's share of upload slots stayed in use", "client", client.String(), "share", o.PerClient, "waited", wait)
		return "busy", fmt.Sprintf("busy: your address (%s) already has %d uploads in progress (http.max_uploads_per_client) and none ended within %s; nothing was stored; retry later", client, o.PerClient, wait)
	default:
		log.Warn("upload refused: no upload slot", "waited", wait, "slots", o.Slots)
		return "busy", fmt.Sprintf("busy: all %d upload slots stayed in use for %s; nothing was stored; retry later", o.Slots, wait)
	}
}

// Reply writes a one-line plain-text answer of an upload route (shared files, agents'
// uploads); every answer, HEAD included, has a length.
func Reply(w http.ResponseWriter, r *http.Request, code int, msg string) {
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
