package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/sharedpath"
	"github.com/keel-relay/keel/internal/wire/ttl"
	"github.com/keel-relay/keel/storage"
)

// WorkerOptions tunes delivery.
type WorkerOptions struct {
	MinBackoff     time.Duration
	MaxBackoff     time.Duration
	Concurrency    int
	AttemptTimeout time.Duration
}

// Metrics are the worker's counters.
type Metrics struct {
	Attempts  *metrics.CounterVec // by hop, result (delivered|retry|dropped|expired)
	BytesSent *metrics.CounterVec // by hop
	// LastDelivered is the Unix time of the last successful delivery to any hop.
	LastDelivered metrics.Gauge
}

// NewMetrics registers the worker's metrics in reg.
func NewMetrics(reg *metrics.Registry) *Metrics {
	return &Metrics{
		Attempts: reg.Counter("keel_forward_attempts_total", "Forward delivery attempts by next hop and result.", "hop", "result").
			Init([]string{"upstream"}, []string{"delivered", "retry", "dropped", "expired"}),
		BytesSent: reg.Counter("keel_forward_bytes_total", "Bytes of shared files delivered to next hops.", "hop").
			Init([]string{"upstream"}),
		LastDelivered: reg.Gauge("keel_forward_last_success_timestamp_seconds",
			"Unix time of the last shared file delivered to a next hop (0: none since start).").With(),
	}
}

// Worker delivers queued forward jobs with bounded concurrency, retrying failed deliveries
// with capped exponential backoff and jitter for as long as the file's TTL lasts.
type Worker struct {
	store   *storage.Store
	hops    *Hops
	opts    WorkerOptions
	log     *slog.Logger
	metrics *Metrics
	wake    chan struct{}

	mu       sync.Mutex
	inflight map[storage.FileKey]bool
}

// NewWorker returns a worker; start it with Run.
func NewWorker(store *storage.Store, hops *Hops, opts WorkerOptions, m *Metrics, log *slog.Logger) *Worker {
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	return &Worker{
		store: store, hops: hops, opts: opts, log: log, metrics: m,
		wake: make(chan struct{}, 1), inflight: map[storage.FileKey]bool{},
	}
}

// Wake tells the worker a job was queued; it never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers jobs until ctx is done, then waits for the deliveries in flight to end
// (their contexts are cancelled: an interrupted delivery stays queued).
func (w *Worker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, w.opts.Concurrency)
	defer wg.Wait()
	for {
		// One reading of the clock for the whole pass: a job that falls due between the
		// queue scan and the wait below must not be taken for a skipped one (that would
		// sleep a minute with nothing in flight to wake us).
		now := time.Now()
		free := w.opts.Concurrency - len(slots)
		var jobs []storage.Job
		if free > 0 {
			var err error
			jobs, err = w.store.DueJobs(now, free, w.isInflight)
			if err != nil {
				w.log.Error("read forward queue", "err", err)
			}
		}
		for _, job := range jobs {
			w.setInflight(job.File, true)
			slots <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.deliver(ctx, job)
				w.setInflight(job.File, false)
				<-slots
				w.Wake()
			}()
		}
		// Sleep until the next job is due. When every slot is busy, or the due jobs were
		// all skipped because a delivery of the same file is in flight, a finishing
		// delivery wakes us instead.
		wait := time.Minute
		if due, ok, err := w.store.NextDue(); err == nil && ok {
			wait = max(time.Until(due), 10*time.Millisecond)
			if len(slots) == w.opts.Concurrency || (len(jobs) == 0 && !due.After(now)) {
				wait = time.Minute
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-w.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

func (w *Worker) isInflight(job storage.Job) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inflight[job.File]
}

func (w *Worker) setInflight(k storage.FileKey, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if on {
		w.inflight[k] = true
	} else {
		delete(w.inflight, k)
	}
}

// Outcome classifies the answer of a next hop.
type Outcome int

// The outcomes of a delivery attempt.
const (
	Delivered Outcome = iota // 2xx: the next hop has it
	Retry                    // 5xx, 408, 429, network error: try again later
	Refused                  // any other 4xx (and 3xx): the next hop will never take it
)

// Classify maps an HTTP status to an Outcome.
func Classify(status int) Outcome {
	switch {
	case status >= 200 && status < 300:
		return Delivered
	case status >= 500, status == http.StatusRequestTimeout, status == http.StatusTooManyRequests,
		status == http.StatusTooEarly:
		return Retry
	default:
		return Refused
	}
}

func (w *Worker) deliver(ctx context.Context, job storage.Job) {
	log := w.log.With("file", job.File.String(), "job", job.ID(), "attempt", job.Attempts+1)
	remaining := time.Until(job.Expires)
	if remaining <= 0 {
		log.Warn("forward dropped: the file expired before it could be delivered", "last_error", job.LastError)
		w.count(job.NextHop, "expired")
		w.complete(job, log)
		return
	}
	hop, err := w.hops.Resolve(job.NextHop)
	if err != nil {
		w.retry(job, err.Error(), log, hopName(job.NextHop))
		return
	}
	log = log.With("hop", hop.Name())
	actx, cancel := context.WithTimeout(ctx, w.opts.AttemptTimeout)
	defer cancel()
	status, sent, err := w.put(actx, hop, job, remaining, true)
	if err == nil && status == http.StatusExpectationFailed {
		// A next hop (or a proxy before it) that refuses "Expect: 100-continue": send the
		// body at once instead.
		log.Info("next hop refused Expect: 100-continue; sending the body without it")
		status, sent, err = w.put(actx, hop, job, remaining, false)
	}
	switch {
	case err != nil:
		if errors.Is(err, storage.ErrNotFound) {
			return // superseded or completed meanwhile
		}
		if ctx.Err() != nil {
			log.Info("forward interrupted by shutdown; it stays queued")
			return
		}
		w.retry(job, err.Error(), log, hop.Name())
	case Classify(status) == Delivered:
		log.Info("forward delivered", "status", status, "bytes", sent)
		w.metrics.BytesSent.With(hop.Name()).Add(float64(sent))
		w.count(job.NextHop, "delivered")
		w.metrics.LastDelivered.Set(float64(time.Now().Unix()))
		w.complete(job, log)
	case Classify(status) == Retry:
		w.retry(job, fmt.Sprintf("next hop answered %d", status), log, hop.Name())
	default:
		log.Warn("forward dropped: the next hop refused the file for good", "status", status)
		w.count(job.NextHop, "dropped")
		w.complete(job, log)
	}
}

func hopName(nextHop string) string {
	if nextHop == "" {
		return "upstream"
	}
	return nextHop
}

func (w *Worker) count(nextHop, result string) {
	w.metrics.Attempts.With(hopName(nextHop), result).Inc()
}

func (w *Worker) complete(job storage.Job, log *slog.Logger) {
	if err := w.store.CompleteJob(job); err != nil {
		log.Error("remove forward job", "err", err)
	}
}

func (w *Worker) retry(job storage.Job, reason string, log *slog.Logger, hop string) {
	w.metrics.Attempts.With(hop, "retry").Inc()
	delay := Backoff(job.Attempts, w.opts.MinBackoff, w.opts.MaxBackoff)
	if _, err := w.store.RescheduleJob(job, time.Now().Add(delay), reason); err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			log.Error("reschedule forward job", "err", err)
		}
		return
	}
	log.Warn("forward failed; will retry", "err", reason, "retry_in", delay.Round(time.Millisecond))
}

// Backoff returns the delay before attempt number attempts+1: min·2^attempts capped at max,
// with "equal jitter" (a random point in the upper half) so that many relays retrying the
// same upstream spread out.
func Backoff(attempts int, minDelay, maxDelay time.Duration) time.Duration {
	d := minDelay
	for i := 0; i < attempts && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	half := d / 2
	return half + rand.N(half+1)
}

// expectContinueMin is the body size above which a delivery asks for "100 Continue" first:
// below it, the round trip costs more than sending the body for nothing.
const expectContinueMin = 64 << 10

// put sends one delivery attempt and returns the next hop's status. With expect, a large body
// waits for the next hop's "100 Continue".
func (w *Worker) put(ctx context.Context, hop Hop, job storage.Job, remaining time.Duration, expect bool) (int, int64, error) {
	content, err := w.store.OpenJob(job)
	if err != nil {
		return 0, 0, err
	}
	body := &jobBody{
		r:    io.MultiReader(bytes.NewReader(job.Header), strings.NewReader("\n"), content),
		c:    content,
		done: make(chan struct{}),
	}
	size := int64(len(job.Header)) + 1 + job.Size
	target := hop.BaseURL + sharedpath.FilePath(job.File.Target, job.File.Source, job.File.ID) + "?ttl=" + ttl.Seconds(remaining)
	// The transport owns the body once Do is called and may still read it after Do returns
	// (a next hop can answer before reading it all). Cancelling the request stops that, and
	// waiting for the transport's Close guarantees the store is not read after put returns
	// (the store may be closed next).
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		select {
		case <-body.done:
		case <-time.After(10 * time.Second):
			w.log.Error("forward: the HTTP transport did not release the request body")
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, body)
	if err != nil {
		body.Close()
		return 0, 0, fmt.Errorf("build request: %w", err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("User-Agent", "keel-relay forward")
	if expect && size > expectContinueMin {
		// A next hop that refuses the file (too large, disk full, access) answers before any
		// of the body is sent; one that ignores the header gets it after ExpectContinueTimeout.
		req.Header.Set("Expect", "100-continue")
	}
	resp, err := hop.Client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("PUT %s: %w", hop.BaseURL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, size, nil
}

// jobBody is the request body of a delivery. The transport reads it and closes it, possibly
// from another goroutine than the one reading: Read and Close are serialised, a Read after
// Close fails, and done is closed once the content is released.
type jobBody struct {
	mu     sync.Mutex
	r      io.Reader
	c      io.Closer
	closed bool
	done   chan struct{}
}

func (b *jobBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errors.New("forward: request body read after close")
	}
	return b.r.Read(p)
}

// Close releases the content; it may be called more than once.
func (b *jobBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	defer close(b.done)
	return b.c.Close()
}

// Head asks hop whether it holds the file with the given hash and returns its status code.
func Head(ctx context.Context, hop Hop, k storage.FileKey, hash string) (int, http.Header, error) {
	target := hop.BaseURL + sharedpath.FilePath(k.Target, k.Source, k.ID) + "?hash=" + url.QueryEscape(hash)
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, target, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("User-Agent", "keel-relay forward")
	resp, err := hop.Client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("HEAD %s: %w", hop.BaseURL, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}
