package sharedfiles

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/keel-relay/keel/relay/uploadslots"
)

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
