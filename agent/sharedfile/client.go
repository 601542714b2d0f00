// Package sharedfile is the node side of the relay's shared-files API: share a
// file with another node (HEAD first, then a signed PUT that streams the
// file), ask whether the relay holds a file, and fetch a file shared with this
// node (a GET signed with the node's key, written atomically and checked
// against the relay's hash before it is renamed into place).
package sharedfile

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/keel-relay/keel/internal/tlspin"
	"github.com/keel-relay/keel/internal/wire/ids"
	"github.com/keel-relay/keel/internal/wire/sharedpath"
)

// Algorithm is the hash algorithm the agent signs and announces files with.
const Algorithm = "sha256"

// ErrNotFound is wrapped by the errors for a file the relay does not hold.
var ErrNotFound = errors.New("not found")

// Identity is who the agent is: the node id in the node map, its key, and the
// informational lines of the signature block.
type Identity struct {
	NodeID   string
	Key      *rsa.PrivateKey
	Hostname string
	KeyDate  string
	KeyID    string
}

// Options configure a Client.
type Options struct {
	// RelayURL is the relay's base URL, e.g. http://127.0.0.1:3030.
	RelayURL string
	// Timeout bounds connecting and every stall of a transfer: a request
	// that makes no progress for this long fails.
	Timeout time.Duration
	// CAFile (PEM bundle) or KeyHash (a pin of the relay's certificate key)
	// say how an https relay is verified; system roots when both are empty.
	CAFile, KeyHash string
	Identity        Identity
	Logger          *slog.Logger
}

// Client talks to one relay's shared-files API as one node.
type Client struct {
	base    string // relay URL without a trailing slash
	http    *http.Client
	timeout time.Duration
	id      Identity
	log     *slog.Logger
}

// New returns a client for o.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.RelayURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("relay URL %q is not an absolute http(s) URL", o.RelayURL)
	}
	if err := ids.ValidNodeID(o.Identity.NodeID); err != nil {
		return nil, fmt.Errorf("this node: %w", err)
	}
	if o.Timeout <= 0 {
		return nil, errors.New("timeout must be > 0")
	}
	tlsConf, err := tlspin.ClientConfig(o.CAFile, o.KeyHash)
	if err != nil {
		return nil, fmt.Errorf("relay TLS: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dialer := &net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   o.Timeout,
		ExpectContinueTimeout: 2 * time.Second,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
	}
	return &Client{
		base:    strings.TrimRight(o.RelayURL, "/"),
		http:    &http.Client{Transport: tr},
		timeout: o.Timeout,
		id:      o.Identity,
		log:     log,
	}, nil
}

// Close releases the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// FileURL returns the URL of a shared file on the relay (under the versioned API prefix).
func (c *Client) FileURL(target, source, fileID string) string {
	return c.base + sharedpath.FilePath(target, source, fileID)
}

// checkIDs validates the ids of a file's route.
func checkIDs(target, source, fileID string) error {
	if err := ids.ValidNodeID(target); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if err := ids.ValidNodeID(source); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if err := ids.ValidFileID(fileID); err != nil {
		return err
	}
	return nil
}

// watchdog cancels a request that makes no progress for a while: every Kick
// restarts the countdown.
type watchdog struct {
	mu    sync.Mutex
	timer *time.Timer
	d     time.Duration
	fired bool
}

// newWatchdog returns a context cancelled when d passes without a Kick, and
// the watchdog; stop releases it.
func newWatchdog(parent context.Context, d time.Duration) (context.Context, *watchdog, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	w := &watchdog{d: d}
	w.timer = time.AfterFunc(d, func() {
		w.mu.Lock()
		w.fired = true
		w.mu.Unlock()
		cancel(fmt.Errorf("no progress for %s (http.timeout)", d))
	})
	return ctx, w, func() { w.timer.Stop(); cancel(nil) }
}

// Kick restarts the countdown.
func (w *watchdog) Kick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.fired {
		w.timer.Reset(w.d)
	}
}

// kickReader kicks a watchdog on every read.
type kickReader struct {
	r io.Reader
	w *watchdog
}

func (k kickReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	k.w.Kick()
	return n, err
}

// requestError describes a failed request: its cause when the watchdog or the
// caller ended it, else err.
func requestError(ctx context.Context, what string, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return fmt.Errorf("%s: %w", what, cause)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// answerText returns the start of an answer's body, for an error message.
func answerText(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	for len(s) > 200 {
		s = s[:200]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	if s == "" {
		return resp.Status
	}
	return resp.Status + ": " + s
}

// NodeID returns the id of the node the client acts as.
func (c *Client) NodeID() string { return c.id.NodeID }
