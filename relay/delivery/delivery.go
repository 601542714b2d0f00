// Package delivery delivers the agents' uploads a relay keeps (inventories, inventory
// updates, reports; SPEC-relay-box.md "Delivery upstream") to its upstream: one loop per
// kind sends the oldest waiting upload first, retries a failing one with backoff while the
// others of its kind wait behind it, removes what the upstream took, keeps aside reports of
// unknown nodes and uploads it cannot read, and expires what waited longer than the
// retention. Everything it works from is in the store, so a restart resumes where it was.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/keel-relay/keel/internal/fsutil"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/uploadname"
	"github.com/keel-relay/keel/relay/forward"
	"github.com/keel-relay/keel/relay/nodemap"
	"github.com/keel-relay/keel/storage"
)

// defaultPassword is the upstream password of /inventories/ when
// upstream_auth.default_password_file is empty (Rudder's package default).
const defaultPassword = "rudder"

// Auth is how uploads authenticate upstream (upstream_auth): HTTP Basic, User with the
// password read from DefaultPasswordFile for inventories ("" = defaultPassword) and from
// PasswordFile for inventory updates and reports ("" = the inventories' password).
type Auth struct {
	User, PasswordFile, DefaultPasswordFile string
}

// Options tunes the worker.
type Options struct {
	// Upstream returns the upstream to deliver to (forward.Hops.Upstream): its base URL and
	// the HTTP client that verifies it.
	Upstream func() (forward.Hop, error)
	// Auth returns the credentials in force (read at every attempt: they follow reloads).
	Auth func() Auth
	// Nodes returns the node map in force: a report's node must be in it.
	Nodes func() *nodemap.Map
	// MinBackoff and MaxBackoff bound the delay before retrying a failed delivery
	// (forward.Backoff); AttemptTimeout bounds one attempt.
	MinBackoff, MaxBackoff, AttemptTimeout time.Duration
	// Retention is how long an upload is kept undelivered before it expires.
	Retention time.Duration
	// SweepInterval is how often expired uploads are removed (default a minute);
	// StatsInterval how often the gauges are refreshed besides after each change (default
	// 5 s).
	SweepInterval, StatsInterval time.Duration
}

// Metrics are the delivery's metrics: relayd's counters, under their names, and Keel's own.
type Metrics struct {
	// Inventories counts the deliveries of inventories and inventory updates by status
	// (forward_ok | forward_error); Reports those of reports (forward_ok | forward_error |
	// invalid).
	Inventories, Reports *metrics.CounterVec
	// Failures counts failed delivery attempts (retried), Expired the uploads expired, by
	// kind.
	Failures, Expired *metrics.CounterVec
	waiting           *metrics.GaugeVec
	failed, bytes     metrics.Gauge
	oldest            sync.Mutex
	oldestAt          time.Time
}

// NewMetrics registers the delivery's metrics in reg, every series at 0.
func NewMetrics(reg *metrics.Registry) *Metrics {
	m := &Metrics{
		Inventories: reg.Counter("rudder_relayd_inventories_total", "Inventories (first and updates) delivered upstream or not, by status.", "status"),
		Reports:     reg.Counter("rudder_relayd_reports_total", "Reports delivered upstream, not delivered, or invalid (unknown node, name), by status.", "status"),
		Failures:    reg.Counter("keel_agent_upload_delivery_failures_total", "Failed attempts to deliver an agent upload upstream (retried), by kind.", "kind"),
		Expired:     reg.Counter("keel_agent_uploads_expired_total", "Agent uploads removed undelivered after agent_uploads.retention, by kind.", "kind"),
		waiting:     reg.Gauge("keel_agent_uploads_waiting", "Agent uploads waiting for delivery upstream, by kind.", "kind"),
	}
	m.failed = reg.Gauge("keel_agent_uploads_failed", "Agent uploads kept aside as failed (not delivered).").With()
	m.bytes = reg.Gauge("keel_agent_uploads_waiting_bytes", "Bytes of the agent uploads waiting for delivery upstream.").With()
	reg.GaugeFunc("keel_agent_uploads_oldest_waiting_seconds", "Age of the oldest agent upload waiting for delivery upstream (0: none waits).", m.oldestAge)
	for _, st := range []string{"forward_ok", "forward_error"} {
		m.Inventories.With(st)
	}
	for _, st := range []string{"forward_ok", "forward_error", "invalid"} {
		m.Reports.With(st)
	}
	for _, k := range uploadname.Kinds {
		m.Failures.With(k.Dir())
		m.Expired.With(k.Dir())
		m.waiting.With(k.Dir())
	}
	return m
}

func (m *Metrics) oldestAge() float64 {
	m.oldest.Lock()
	defer m.oldest.Unlock()
	if m.oldestAt.IsZero() {
		return 0
	}
	return max(time.Since(m.oldestAt).Seconds(), 0)
}

// outcome counts a delivery's outcome in relayd's counter of its kind.
func (m *Metrics) outcome(k uploadname.Kind, status string) {
	if k == uploadname.Report {
		m.Reports.With(status).Inc()
	} else {
		m.Inventories.With(status).Inc()
	}
}

// Worker delivers the kept uploads upstream. Start it with Run.
type Worker struct {
	store *storage.Store
	opts  Options
	m     *Metrics
	log   *slog.Logger
	// wake has one channel per kind (index: the Kind) and one for the gauges (index 0).
	wake [len(uploadname.Kinds) + 1]chan struct{}
}

// New returns a worker over store.
func New(store *storage.Store, opts Options, m *Metrics, log *slog.Logger) *Worker {
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = time.Minute
	}
	if opts.StatsInterval <= 0 {
		opts.StatsInterval = 5 * time.Second
	}
	w := &Worker{store: store, opts: opts, m: m, log: log}
	for i := range w.wake {
		w.wake[i] = make(chan struct{}, 1)
	}
	return w
}

// Wake tells the worker a new upload is kept; it never blocks.
func (w *Worker) Wake() {
	for _, c := range w.wake {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// Run delivers until ctx is done, then waits for its loops to end (an attempt in flight is
// cancelled and stays waiting).
func (w *Worker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, k := range uploadname.Kinds {
		wg.Go(func() { w.loop(ctx, k) })
	}
	wg.Go(func() { w.housekeep(ctx) })
	wg.Wait()
}

// idleWait is how long a loop with nothing to do sleeps when nothing wakes it.
const idleWait = time.Minute

// loop delivers kind's uploads in arrival order: the head, when it is due, then the next.
func (w *Worker) loop(ctx context.Context, k uploadname.Kind) {
	storeErrors := 0
	for ctx.Err() == nil {
		wait := idleWait
		a, ok, err := w.store.NextAgentUpload(k.Dir())
		switch {
		case err != nil:
			wait = forward.Backoff(storeErrors, w.opts.MinBackoff, w.opts.MaxBackoff)
			storeErrors++
			w.log.Error("read the agent uploads waiting for delivery", "kind", k.Dir(), "err", err, "retry_in", wait)
		case ok:
			if d := time.Until(a.Due); d > 0 {
				storeErrors = 0
				wait = d
				break
			}
			err := w.deliver(ctx, k, a)
			w.refresh()
			if err == nil {
				storeErrors = 0
				continue
			}
			// The outcome could not be recorded (the upload is still due): do not send it
			// again at once, in a loop.
			wait = forward.Backoff(storeErrors, w.opts.MinBackoff, w.opts.MaxBackoff)
			storeErrors++
		default:
			storeErrors = 0
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-w.wake[k]:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// housekeep expires the uploads kept beyond the retention and refreshes the gauges.
func (w *Worker) housekeep(ctx context.Context) {
	sweep := time.NewTicker(w.opts.SweepInterval)
	defer sweep.Stop()
	stats := time.NewTicker(w.opts.StatsInterval)
	defer stats.Stop()
	w.expire()
	for {
		w.refresh()
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			w.expire()
		case <-stats.C:
		case <-w.wake[0]:
		}
	}
}

// expire removes the uploads received longer than the retention ago, counted by kind.
func (w *Worker) expire() {
	before := time.Now().Add(-w.opts.Retention)
	for _, k := range uploadname.Kinds {
		n, err := w.store.ExpireAgentUploadsOf(k.Dir(), before, 0)
		if n > 0 {
			w.m.Expired.With(k.Dir()).Add(float64(n))
			w.log.Warn("agent uploads expired undelivered", "kind", k.Dir(), "count", n, "retention", w.opts.Retention)
		}
		if err != nil {
			w.log.Error("expire agent uploads", "kind", k.Dir(), "err", err)
		}
	}
}

// refresh sets the gauges from the store's counters.
func (w *Worker) refresh() {
	st := w.store.AgentUploadStats()
	w.m.failed.Set(float64(st.Failed))
	w.m.bytes.Set(float64(st.WaitingBytes))
	w.m.oldest.Lock()
	w.m.oldestAt = st.OldestWaiting
	w.m.oldest.Unlock()
	for _, k := range uploadname.Kinds {
		w.m.waiting.With(k.Dir()).Set(float64(w.store.AgentUploadStatsOf(k.Dir()).Waiting))
	}
}

// localError is a failure of this relay (reading the store), not of the upstream: the
// upload is kept aside as failed.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// deliver makes one attempt at a (due) and records its outcome; it returns the error of
// the store that kept it from recording it (logged).
func (w *Worker) deliver(ctx context.Context, k uploadname.Kind, a storage.AgentUpload) error {
	log := w.log.With("kind", k.Dir(), "name", a.Name, "upload", a.ID(), "attempt", a.Attempts+1)
	if !uploadname.Forwardable(k, a.Name) {
		// Accepted from the agent, never forwarded (SPEC-relay-box.md): the relay's own
		// self-test file, a report whose name does not say its node.
		log.Warn("agent upload not forwarded: the upstream does not take this name; removed")
		if k == uploadname.Report {
			w.m.Reports.With("invalid").Inc()
		}
		return w.remove(a, log)
	}
	if k == uploadname.Report {
		node, _ := uploadname.ReportNode(a.Name) // Forwardable: it parses
		m := w.opts.Nodes()
		if m.Len() == 0 {
			// No map (not loaded yet, or broken): every node would be unknown. Wait.
			return w.retry(k, a, "the node map is empty: cannot tell whether the report's node is known", false, log)
		}
		if _, known := m.Node(node); !known && node != m.Self() {
			log.Warn("report kept aside as failed: its node is not in the node map", "node", node)
			w.m.Reports.With("invalid").Inc()
			return w.fail(a, "unknown node "+node, log)
		}
	}
	status, err := w.put(ctx, k, a)
	var local *localError
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// Replaced or removed meanwhile: the loop takes the next one.
		return nil
	case errors.As(err, &local):
		log.Error("agent upload kept aside as failed: it cannot be read", "err", err)
		return w.fail(a, "local error: "+err.Error(), log)
	case err != nil && ctx.Err() != nil:
		log.Info("delivery interrupted by shutdown; the upload stays waiting")
		return nil
	case err != nil:
		return w.retry(k, a, err.Error(), true, log)
	case status >= 200 && status < 300:
		log.Info("agent upload delivered upstream", "status", status, "bytes", a.Size)
		w.m.outcome(k, "forward_ok")
		return w.remove(a, log)
	default:
		return w.retry(k, a, fmt.Sprintf("the upstream answered %d %s", status, http.StatusText(status)), true, log)
	}
}

func (w *Worker) remove(a storage.AgentUpload, log *slog.Logger) error {
	err := w.store.DeleteAgentUpload(a)
	if err != nil {
		log.Error("remove agent upload", "err", err)
	}
	return err
}

func (w *Worker) fail(a storage.AgentUpload, reason string, log *slog.Logger) error {
	err := w.store.FailAgentUpload(a, reason)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		log.Error("keep agent upload aside as failed", "err", err)
	}
	return err
}

// retry records a failed attempt; counted says it was a delivery that failed (not a wait).
func (w *Worker) retry(k uploadname.Kind, a storage.AgentUpload, reason string, counted bool, log *slog.Logger) error {
	if counted {
		w.m.Failures.With(k.Dir()).Inc()
		w.m.outcome(k, "forward_error")
	}
	delay := forward.Backoff(a.Attempts, w.opts.MinBackoff, w.opts.MaxBackoff)
	if err := w.store.RetryAgentUpload(a, time.Now().Add(delay), reason); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		log.Error("record failed delivery", "err", err)
		return err
	}
	log.Warn("agent upload not delivered; will retry", "err", reason, "retry_in", delay.Round(time.Millisecond))
	return nil
}

// maxPasswordFile bounds a password file.
const maxPasswordFile = 4 << 10

// credentials returns the user and password that deliver uploads of kind k.
func (w *Worker) credentials(k uploadname.Kind) (string, string, error) {
	auth := w.opts.Auth()
	file := auth.PasswordFile
	if k == uploadname.Inventory || file == "" {
		file = auth.DefaultPasswordFile
	}
	if file == "" {
		return auth.User, defaultPassword, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return "", "", fmt.Errorf("upstream password: %w", err)
	}
	defer f.Close()
	b, err := fsutil.ReadAllMax(f, file, maxPasswordFile)
	if err != nil {
		return "", "", fmt.Errorf("upstream password: %w", err)
	}
	pw := strings.TrimSuffix(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	return auth.User, pw, nil
}

// maxRedirects bounds the redirects a delivery follows.
const maxRedirects = 10

// checkRedirect follows a redirect only while the request stays a PUT (a 301, 302 or 303
// would turn it into a GET, whose 2xx is no delivery) and does not leave HTTPS (the
// credentials would travel in clear).
func checkRedirect(req *http.Request, via []*http.Request) error {
	switch {
	case len(via) >= maxRedirects:
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	case req.Method != http.MethodPut:
		return fmt.Errorf("the upstream redirects the upload to a %s (%s), which would not deliver it", req.Method, req.Response.Status)
	case via[0].URL.Scheme == "https" && req.URL.Scheme != "https":
		return fmt.Errorf("the upstream redirects the upload from HTTPS to %s", req.URL.Redacted())
	}
	return nil
}

// put sends one attempt: PUT <upstream>/<kind>/<name> with the upload's bytes, following
// redirects (the body is sent again from the store). It returns the final status.
func (w *Worker) put(ctx context.Context, k uploadname.Kind, a storage.AgentUpload) (int, error) {
	hop, err := w.opts.Upstream()
	if err != nil {
		return 0, err
	}
	user, password, err := w.credentials(k)
	if err != nil {
		return 0, err
	}
	b := &bodies{store: w.store, a: a}
	first, err := b.open()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, w.opts.AttemptTimeout)
	// The transport may read a body after Do returns; once the request is cancelled it
	// closes them, and the store is not read after put returns (it may close next).
	defer func() {
		cancel()
		if !b.wait(10 * time.Second) {
			w.log.Error("delivery: the HTTP transport did not release the request body")
		}
	}()
	target := hop.BaseURL + "/" + k.Dir() + "/" + url.PathEscape(a.Name)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, first)
	if err != nil {
		_ = first.Close()
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.ContentLength = a.Size
	req.GetBody = b.open
	if a.Size == 0 {
		// A zero length with a body would be sent chunked.
		_ = first.Close()
		req.Body = http.NoBody
		req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
	}
	req.SetBasicAuth(user, password)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("User-Agent", "keel-relay delivery")
	client := *hop.Client
	client.CheckRedirect = checkRedirect
	resp, err := client.Do(req)
	if err != nil {
		if lerr := b.err(); lerr != nil {
			return 0, lerr
		}
		return 0, fmt.Errorf("PUT %s: %w", target, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// bodies opens the request bodies of one attempt (the first, and one more per redirect
// that sends the body again) and knows when the transport released them all.
type bodies struct {
	store *storage.Store
	a     storage.AgentUpload

	mu     sync.Mutex
	opened []*body
	fail   error // the first local failure (open or read)
}

// open returns a new reader of the upload's content. A failure other than ErrNotFound is
// a localError.
func (b *bodies) open() (io.ReadCloser, error) {
	rc, err := b.store.OpenAgentUpload(b.a)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			err = &localError{fmt.Errorf("open the upload in the store: %w", err)}
		}
		b.failed(err)
		return nil, err
	}
	bd := &body{rc: rc, owner: b, done: make(chan struct{})}
	b.mu.Lock()
	b.opened = append(b.opened, bd)
	b.mu.Unlock()
	return bd, nil
}

func (b *bodies) failed(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail == nil {
		b.fail = err
	}
}

func (b *bodies) err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fail
}

// wait waits until every body opened is closed, or timeout; it reports whether they were.
func (b *bodies) wait(timeout time.Duration) bool {
	b.mu.Lock()
	open := append([]*body(nil), b.opened...)
	b.mu.Unlock()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, bd := range open {
		select {
		case <-bd.done:
		case <-deadline.C:
			return false
		}
	}
	return true
}

// body is one request body. The transport reads and closes it, maybe from two goroutines:
// Read and Close are serialised, and a Read after Close fails.
type body struct {
	mu     sync.Mutex
	rc     io.ReadCloser
	owner  *bodies
	closed bool
	done   chan struct{}
}

func (bd *body) Read(p []byte) (int, error) {
	bd.mu.Lock()
	defer bd.mu.Unlock()
	if bd.closed {
		return 0, errors.New("delivery: request body read after close")
	}
	n, err := bd.rc.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &localError{fmt.Errorf("read the upload from the store: %w", err)}
		bd.owner.failed(err)
	}
	return n, err
}

// Close releases the content; it may be called more than once.
func (bd *body) Close() error {
	bd.mu.Lock()
	defer bd.mu.Unlock()
	if bd.closed {
		return nil
	}
	bd.closed = true
	defer close(bd.done)
	return bd.rc.Close()
}
