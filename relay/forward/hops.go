// Package forward delivers shared files to the next hop — a sub-relay below this relay or the
// upstream policy server — from the persistent queue in storage, and asks next hops whether
// they hold a file (HEAD pass-through).
package forward

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keel-relay/keel/internal/tlspin"
	"github.com/keel-relay/keel/internal/wire/keyhash"
	"github.com/keel-relay/keel/relay/nodemap"
)

// HopOptions says how next hops are reached and verified.
type HopOptions struct {
	// Upstream is the base URL of the policy server or parent relay ("" at the root).
	Upstream string
	// SubRelayURL is the base URL template of a sub-relay: {hostname} and {node_id} are
	// replaced from the node map.
	SubRelayURL string
	// AllowHTTP permits plain http:// next hops.
	AllowHTTP bool
	// CAFile verifies the upstream's certificate chain (system roots when empty).
	CAFile string
	// UpstreamKeyHash pins the upstream certificate's public key.
	UpstreamKeyHash string
	// InsecureSkipVerify disables verification of every next hop (explicit opt-in).
	InsecureSkipVerify bool
}

// Hop is a resolved next hop.
type Hop struct {
	// NodeID is the sub-relay's id, or "" for the upstream.
	NodeID string
	// BaseURL is the hop's base URL, without a trailing slash.
	BaseURL string
	// Client is the HTTP client that verifies this hop.
	Client *http.Client
}

// Name returns the hop's id for logs and metrics: the sub-relay id or "upstream".
func (h Hop) Name() string {
	if h.NodeID == "" {
		return "upstream"
	}
	return h.NodeID
}

// Hops resolves next hops and keeps one HTTP client per distinct verification.
type Hops struct {
	opts     HopOptions
	nodes    func() *nodemap.Map
	upstream *http.Client

	mu      sync.Mutex
	clients map[string]*http.Client // by sub-relay key pin
}

// NewHops prepares next-hop resolution. nodes returns the current node map.
func NewHops(opts HopOptions, nodes func() *nodemap.Map, log *slog.Logger) (*Hops, error) {
	h := &Hops{opts: opts, nodes: nodes, clients: map[string]*http.Client{}}
	if opts.InsecureSkipVerify {
		log.Warn("TLS verification of next hops is DISABLED (forward.tls.insecure_skip_verify); files may be sent to an impostor")
	}
	if opts.Upstream != "" {
		tlsConf, err := upstreamTLS(opts)
		if err != nil {
			return nil, err
		}
		h.upstream = newClient(tlsConf)
	}
	return h, nil
}

// upstreamTLS returns how the upstream is verified: not at all with the insecure switch,
// else as package tlspin's ClientConfig says (a key pin replaces chain verification).
func upstreamTLS(opts HopOptions) (*tls.Config, error) {
	if opts.InsecureSkipVerify {
		return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}, nil
	}
	conf, err := tlspin.ClientConfig(opts.CAFile, opts.UpstreamKeyHash)
	if err != nil {
		return nil, fmt.Errorf("forward.tls: %w", err)
	}
	return conf, nil
}

func newClient(conf *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // next hops are reached directly, never through a proxy from the environment
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       conf,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
			ExpectContinueTimeout: 2 * time.Second,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     false,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Upstream returns the upstream hop, or an error at the root (no upstream configured).
func (h *Hops) Upstream() (Hop, error) {
	if h.opts.Upstream == "" {
		return Hop{}, errors.New("no upstream configured")
	}
	if err := h.checkScheme(h.opts.Upstream); err != nil {
		return Hop{}, fmt.Errorf("upstream: %w", err)
	}
	return Hop{BaseURL: strings.TrimRight(h.opts.Upstream, "/"), Client: h.upstream}, nil
}

// SubRelay returns the hop of the sub-relay id, verified by its key-hash in the node map.
func (h *Hops) SubRelay(id string) (Hop, error) {
	node, ok := h.nodes().Node(id)
	if !ok {
		return Hop{}, fmt.Errorf("sub-relay %s is not in the node map", id)
	}
	base := strings.NewReplacer("{hostname}", node.Hostname, "{node_id}", node.ID).Replace(h.opts.SubRelayURL)
	base = strings.TrimRight(base, "/")
	if err := h.checkScheme(base); err != nil {
		return Hop{}, fmt.Errorf("sub-relay %s: %w", id, err)
	}
	if strings.HasPrefix(base, "http://") || h.opts.InsecureSkipVerify {
		return Hop{NodeID: id, BaseURL: base, Client: h.client("", nil)}, nil
	}
	pin, err := keyhash.Parse(node.KeyHash)
	if err != nil {
		return Hop{}, fmt.Errorf("sub-relay %s: no usable key-hash in the node map to verify it (%q): %w", id, node.KeyHash, err)
	}
	return Hop{NodeID: id, BaseURL: base, Client: h.client(pin.String(), &pin)}, nil
}

// Resolve returns the hop for a next-hop id as stored in a job ("" = upstream).
func (h *Hops) Resolve(nextHop string) (Hop, error) {
	if nextHop == "" {
		return h.Upstream()
	}
	return h.SubRelay(nextHop)
}

func (h *Hops) checkScheme(base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("bad URL %q: %w", base, err)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if h.opts.AllowHTTP {
			return nil
		}
		return fmt.Errorf("plain http next hop %q refused (set forward.allow_http to allow it)", base)
	default:
		return fmt.Errorf("next hop %q is not an http(s) URL", base)
	}
}

func (h *Hops) client(key string, pin *keyhash.Pin) *http.Client {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.clients[key]; ok {
		return c
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case h.opts.InsecureSkipVerify:
		conf.InsecureSkipVerify = true
	case pin != nil:
		conf = tlspin.PinnedConfig(*pin)
	}
	c := newClient(conf)
	h.clients[key] = c
	return c
}
