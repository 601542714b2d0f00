package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keel-relay/keel/internal/confload"
)

// Limits enforced by Validate.
const (
	MaxBodyLimit        = 64 * GiB
	MinValueLogFileSize = 1 * MiB
	MaxValueLogFileSize = 1*GiB - 1
	MinChunkSize        = 4 * KiB
	MaxChunkSize        = 4 * MiB
	MaxForwardWorkers   = 256
	MaxRemoteRunWorkers = 1024 // remote_run.concurrency
	MaxRemoteRunCalls   = 1024 // remote_run.max_calls
	MaxRemoteRunTimeout = 24 * time.Hour
	// MaxConnections bounds http.max_connections.
	MaxConnections = 1 << 20
	// MaxValueThreshold is the storage engine's own cap on value_threshold.
	MaxValueThreshold = 1 * MiB
	// MinMemoryLimit is the smallest memory.limit: below it the relay cannot run.
	MinMemoryLimit = 32 * MiB
)

// Validate checks every key and returns one error per bad key (joined with
// errors.Join), each message starting with the dotted key.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, keyErr(key, format, args...))
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			add(key, "must be > 0, got %s", formatDuration(d))
		}
	}

	if err := checkNodeID(c.NodeID); err != nil {
		add("node_id", "%v", err)
	}
	switch c.Role {
	case RoleRoot:
		if c.Upstream != "" {
			if err := checkBaseURL(c.Upstream, c.Forward.AllowHTTP); err != nil {
				add("upstream", "%v", err)
			}
		}
	case RoleRelay:
		if c.Upstream == "" {
			add("upstream", "required when role is relay")
		} else if err := checkBaseURL(c.Upstream, c.Forward.AllowHTTP); err != nil {
			add("upstream", "%v", err)
		}
	default:
		add("role", "%q is not root or relay", c.Role)
	}
	if c.DataDir == "" {
		add("data_dir", "must not be empty")
	}
	if c.NodesPollInterval < 0 {
		add("nodes_poll_interval", "must be >= 0, got %s", formatDuration(c.NodesPollInterval))
	}
	positive("shutdown_grace", c.ShutdownGrace)

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format", "%q is not text or json", c.Log.Format)
	}

	h := &c.HTTP
	if err := checkListen(h.Listen); err != nil {
		add("http.listen", "%v", err)
	}
	for _, nets := range []struct {
		key  string
		list []string
	}{
		{"http.allowed_networks", h.AllowedNetworks},
		{"http.policy_server_networks", h.PolicyServerNetworks},
		{"admin.metrics_networks", c.Admin.MetricsNetworks},
	} {
		for i, s := range nets.list {
			if _, err := parseNetwork(s); err != nil {
				add(fmt.Sprintf("%s[%d]", nets.key, i), "%v", err)
			}
		}
	}
	if h.MaxBody <= 0 || h.MaxBody > MaxBodyLimit {
		add("http.max_body", "must be > 0 and <= %s, got %s", MaxBodyLimit, h.MaxBody)
	}
	switch {
	case h.TLSCert != "" && h.TLSKey == "":
		add("http.tls_key", "required when http.tls_cert is set")
	case h.TLSCert == "" && h.TLSKey != "":
		add("http.tls_cert", "required when http.tls_key is set")
	}
	positive("http.read_header_timeout", h.ReadHeaderTimeout)
	positive("http.idle_timeout", h.IdleTimeout)
	positive("http.body_idle_timeout", h.BodyIdleTimeout)
	if h.MaxConnections < 1 || h.MaxConnections > MaxConnections {
		add("http.max_connections", "must be between 1 and %d, got %d", MaxConnections, h.MaxConnections)
	} else if h.MaxConnections < h.MaxConcurrentUploads {
		add("http.max_connections", "%d is fewer than http.max_concurrent_uploads (%d): every upload needs a connection", h.MaxConnections, h.MaxConcurrentUploads)
	}
	if h.MaxConcurrentUploads < 1 {
		add("http.max_concurrent_uploads", "must be >= 1, got %d", h.MaxConcurrentUploads)
	}
	if h.MaxUploadsPerClient < 0 || h.MaxUploadsPerClient > max(h.MaxConcurrentUploads, 1) {
		add("http.max_uploads_per_client", "must be 0 (a quarter of http.max_concurrent_uploads) or 1 to http.max_concurrent_uploads (%d), got %d", h.MaxConcurrentUploads, h.MaxUploadsPerClient)
	}
	if h.MinUploadRate < 0 {
		add("http.min_upload_rate", "must not be negative, got %s", h.MinUploadRate)
	}
	positive("http.upload_slot_wait", h.UploadSlotWait)
	if h.UploadPreemptRate < 0 {
		add("http.upload_preempt_rate", "must not be negative, got %s", h.UploadPreemptRate)
	}

	if c.Admin.Listen != "" {
		if err := checkListen(c.Admin.Listen); err != nil {
			add("admin.listen", "%v", err)
		} else if c.Admin.Listen == h.Listen && !strings.HasSuffix(h.Listen, ":0") {
			add("admin.listen", "%q is also http.listen (use another port, or empty to disable)", c.Admin.Listen)
		}
	}
	if tf := c.Admin.TokenFile; tf != "" && (strings.HasSuffix(tf, "/") || strings.HasSuffix(tf, `\`) || strings.ContainsRune(tf, 0)) {
		add("admin.token_file", "%q is not a file path", tf)
	}

	if c.SharedFiles.CleanupInterval < time.Second {
		add("shared_files.cleanup_interval", "must be >= 1s, got %s", formatDuration(c.SharedFiles.CleanupInterval))
	}

	f := &c.Forward
	positive("forward.min_backoff", f.MinBackoff)
	if f.MaxBackoff < f.MinBackoff {
		add("forward.max_backoff", "%s is less than forward.min_backoff (%s)", formatDuration(f.MaxBackoff), formatDuration(f.MinBackoff))
	}
	if f.Concurrency < 1 || f.Concurrency > MaxForwardWorkers {
		add("forward.concurrency", "must be between 1 and %d, got %d", MaxForwardWorkers, f.Concurrency)
	}
	positive("forward.attempt_timeout", f.AttemptTimeout)
	if f.MaxJobs < 1 {
		add("forward.max_jobs", "must be >= 1, got %d", f.MaxJobs)
	}
	if err := checkSubRelayURL(f.SubRelayURL, f.AllowHTTP); err != nil {
		add("forward.sub_relay_url", "%v", err)
	}
	if f.TLS.KeyHash != "" {
		if err := checkKeyHash(f.TLS.KeyHash); err != nil {
			add("forward.tls.key_hash", "%v", err)
		}
	}

	r := &c.RemoteRun
	if len(r.Command) == 0 {
		add("remote_run.command", "must have at least one element (the program to run)")
	}
	for i, arg := range r.Command {
		if err := checkCommandArg(i, arg); err != nil {
			add(fmt.Sprintf("remote_run.command[%d]", i), "%v", err)
		}
	}
	if r.Concurrency < 1 || r.Concurrency > MaxRemoteRunWorkers {
		add("remote_run.concurrency", "must be between 1 and %d, got %d", MaxRemoteRunWorkers, r.Concurrency)
	}
	if r.Timeout <= 0 || r.Timeout > MaxRemoteRunTimeout {
		add("remote_run.timeout", "must be > 0 and <= %s, got %s", formatDuration(MaxRemoteRunTimeout), formatDuration(r.Timeout))
	}
	if r.MaxCalls < 1 || r.MaxCalls > MaxRemoteRunCalls {
		add("remote_run.max_calls", "must be between 1 and %d, got %d", MaxRemoteRunCalls, r.MaxCalls)
	}
	if err := checkSubRelayURL(r.SubRelayURL, f.AllowHTTP); err != nil {
		add("remote_run.sub_relay_url", "%v", err)
	}

	s := &c.Storage
	for _, sz := range []struct {
		key string
		v   ByteSize
	}{
		{"storage.mem_table_size", s.MemTableSize},
		{"storage.block_cache_size", s.BlockCacheSize},
		{"storage.index_cache_size", s.IndexCacheSize},
	} {
		if sz.v <= 0 {
			add(sz.key, "must be > 0, got %s", sz.v)
		}
	}
	if s.NumMemtables < 1 {
		add("storage.num_memtables", "must be >= 1, got %d", s.NumMemtables)
	}
	if s.ValueLogFileSize < MinValueLogFileSize || s.ValueLogFileSize > MaxValueLogFileSize {
		add("storage.value_log_file_size", "must be at least 1MiB and below 1GiB (value-log files are mmapped, which 32-bit ARM cannot do for larger files), got %s", s.ValueLogFileSize)
	}
	chunkOK := s.ChunkSize >= MinChunkSize && s.ChunkSize <= MaxChunkSize
	if !chunkOK {
		add("storage.chunk_size", "must be between %s and %s, got %s", MinChunkSize, MaxChunkSize, s.ChunkSize)
	}
	switch {
	case s.ValueThreshold <= 0:
		add("storage.value_threshold", "must be > 0, got %s", s.ValueThreshold)
	case chunkOK && s.ValueThreshold >= s.ChunkSize:
		add("storage.value_threshold", "%s must be less than storage.chunk_size (%s)", s.ValueThreshold, s.ChunkSize)
	case s.ValueThreshold > MaxValueThreshold:
		add("storage.value_threshold", "must be <= %s, got %s", MaxValueThreshold, s.ValueThreshold)
	case s.MemTableSize > 0 && int64(s.ValueThreshold) > int64(s.MemTableSize)*15/100:
		add("storage.value_threshold", "%s is more than 15%% of storage.mem_table_size (%s), which the storage engine refuses", s.ValueThreshold, s.MemTableSize)
	}
	if s.NumCompactors < 2 {
		add("storage.num_compactors", "must be >= 2, got %d", s.NumCompactors)
	}
	if s.MinFreeSpace != Auto && s.MinFreeSpace < 0 {
		add("storage.min_free_space", "must be auto or a size, got %d", int64(s.MinFreeSpace))
	}
	c.Edge.validate(add)
	if l := c.Memory.Limit; l != Auto && l < AutoByteSize(MinMemoryLimit) {
		add("memory.limit", "must be auto or at least %s, got %s", MinMemoryLimit, l)
	}
	return errors.Join(errs...)
}

// Limits of the edge section.
const (
	MaxEdgeStreams     = 1_000_000
	MaxEdgeStreamQueue = 65536
	MinEdgeKeepalive   = 20 * time.Second // the listener refuses pings more often than this
)

func (e *EdgeConfig) validate(add func(key, format string, args ...any)) {
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			add(key, "must be > 0, got %s", formatDuration(d))
		}
	}
	if err := checkListen(e.Listen); err != nil {
		add("edge.listen", "%v", err)
	} else if e.Enabled && e.TLS.CertFile == "" && !e.AllowPlaintext && !IsLoopbackListen(e.Listen) {
		add("edge.listen", "%q is not a loopback address: set edge.tls.cert_file and key_file (or edge.allow_plaintext: true behind a TLS-terminating proxy)", e.Listen)
	}
	switch {
	case e.TLS.CertFile != "" && e.TLS.KeyFile == "":
		add("edge.tls.key_file", "required when edge.tls.cert_file is set")
	case e.TLS.CertFile == "" && e.TLS.KeyFile != "":
		add("edge.tls.cert_file", "required when edge.tls.key_file is set")
	}
	switch e.Role {
	case EdgeRoleController, EdgeRoleHybrid, EdgeRoleRelayCoordinator, EdgeRoleWorker:
	default:
		add("edge.role", "%q is not controller, hybrid, relay_coordinator or worker", e.Role)
	}
	if e.HeartbeatInterval < MinEdgeKeepalive {
		add("edge.heartbeat_interval", "must be >= %s (the listener's keepalive floor), got %s", formatDuration(MinEdgeKeepalive), formatDuration(e.HeartbeatInterval))
	}
	if e.StaleThreshold <= e.HeartbeatInterval {
		add("edge.stale_threshold", "%s must be more than edge.heartbeat_interval (%s)", formatDuration(e.StaleThreshold), formatDuration(e.HeartbeatInterval))
	}
	if e.TokenTTL < time.Minute || e.TokenTTL > 24*time.Hour {
		add("edge.token_ttl", "must be between 1m and 24h, got %s", formatDuration(e.TokenTTL))
	}
	if e.OverlapWindow <= 0 || e.OverlapWindow > e.TokenTTL {
		add("edge.overlap_window", "must be > 0 and <= edge.token_ttl, got %s", formatDuration(e.OverlapWindow))
	}
	if e.AttestPerMinute < 1 || e.AttestPerMinute > 10000 {
		add("edge.attest_per_minute", "must be between 1 and 10000, got %d", e.AttestPerMinute)
	}
	if e.MaxPendingChallenges < 1 || e.MaxPendingChallenges > 1_000_000 {
		add("edge.max_pending_challenges", "must be between 1 and 1000000, got %d", e.MaxPendingChallenges)
	}
	if e.ReservedChallenges < 1 || e.ReservedChallenges > 1_000_000 {
		add("edge.reserved_challenges", "must be between 1 and 1000000, got %d", e.ReservedChallenges)
	}
	// A share larger than the pool is the pool (the server lowers it): old configs with a
	// small max_pending_challenges stay valid.
	switch {
	case e.ChallengesPerSource < 1 || e.ChallengesPerSource > 1_000_000:
		add("edge.challenges_per_source", "must be between 1 and 1000000, got %d", e.ChallengesPerSource)
	case e.ChallengesPerSource > e.ChallengesPerNetwork && e.ChallengesPerNetwork >= 1:
		add("edge.challenges_per_source", "%d is more than edge.challenges_per_network (%d): a source is in one network", e.ChallengesPerSource, e.ChallengesPerNetwork)
	}
	if e.ChallengesPerNetwork < 1 || e.ChallengesPerNetwork > 1_000_000 {
		add("edge.challenges_per_network", "must be between 1 and 1000000, got %d", e.ChallengesPerNetwork)
	}
	seen := map[string]bool{}
	for i, ti := range e.TrustedIssuers {
		key := fmt.Sprintf("edge.trusted_issuers[%d]", i)
		switch {
		case ti.Issuer == "":
			add(key+".issuer", "must not be empty")
		case strings.HasPrefix(ti.Issuer, "keel-relay:"):
			add(key+".issuer", "%q: the keel-relay: prefix is this relay's own", ti.Issuer)
		case seen[ti.Issuer]:
			add(key+".issuer", "%q is listed twice", ti.Issuer)
		}
		seen[ti.Issuer] = true
		if ti.PublicKeyFile == "" {
			add(key+".public_key_file", "must not be empty")
		}
	}
	positive("edge.hello_timeout", e.HelloTimeout)
	if e.StreamQueue < 1 || e.StreamQueue > MaxEdgeStreamQueue {
		add("edge.stream_queue", "must be between 1 and %d, got %d", MaxEdgeStreamQueue, e.StreamQueue)
	}
	positive("edge.flush_interval", e.FlushInterval)
	positive("edge.drain_grace", e.DrainGrace)
	if e.MaxStreams < 1 || e.MaxStreams > MaxEdgeStreams {
		add("edge.max_streams", "must be between 1 and %d, got %d", MaxEdgeStreams, e.MaxStreams)
	}
}

// IsLoopbackListen reports whether a listen address (host:port) only accepts connections
// from the machine itself: a loopback IP or "localhost".
func IsLoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func checkNodeID(id string) error {
	switch {
	case id == "":
		return errors.New("must not be empty")
	case len(id) > 255:
		return fmt.Errorf("is %d characters long, more than 255", len(id))
	case id == "." || id == ".." || strings.ContainsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
	}):
		return fmt.Errorf("%q is not a valid node id (letters, digits, '_', '.', '-'; not \".\" or \"..\")", id)
	}
	return nil
}

// checkListen checks a listen address: host:port with a numeric port; the host
// may be empty (all interfaces), an IP or a host name.
func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || strings.HasPrefix(port, "+") {
		return fmt.Errorf("%q: port %q is not a number between 0 and 65535", s, port)
	}
	if host != "" && !confload.IsHostName(host) {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q: %q is not an IP address or host name", s, host)
		}
	}
	return nil
}

// parseNetwork parses a CIDR ("10.0.0.0/8") or a single IP (as a /32 or /128).
func parseNetwork(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or IP", s)
}

// Networks parses a list of CIDRs or IPs, as in http.allowed_networks; a single
// IP becomes a /32 or /128 prefix.
func Networks(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		p, err := parseNetwork(s)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// checkBaseURL checks an upstream base URL: absolute http(s), a host, no query or
// fragment; http only when allowHTTP.
func checkBaseURL(s string, allowHTTP bool) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	if err := checkScheme(s, u, allowHTTP); err != nil {
		return err
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("%q must not have a query or fragment", s)
	}
	return nil
}

func checkScheme(s string, u *url.URL, allowHTTP bool) error {
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%q is not an absolute http:// or https:// URL", s)
	case u.Host == "":
		return fmt.Errorf("%q has no host", s)
	case u.Scheme == "http" && !allowHTTP:
		return fmt.Errorf("%q is plain http (set forward.allow_http to allow it)", s)
	}
	return nil
}

// checkSubRelayURL checks the sub-relay URL template.
func checkSubRelayURL(s string, allowHTTP bool) error {
	if !strings.Contains(s, "{hostname}") && !strings.Contains(s, "{node_id}") {
		return fmt.Errorf("%q contains neither {hostname} nor {node_id}", s)
	}
	sample := strings.NewReplacer("{hostname}", "relay.example", "{node_id}", "node").Replace(s)
	if strings.ContainsAny(sample, "{}") {
		return fmt.Errorf("%q has a placeholder other than {hostname} and {node_id}", s)
	}
	u, err := url.Parse(sample)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	return checkScheme(s, u, allowHTTP)
}

// checkCommandArg checks argument i of remote_run.command: not empty, no NUL
// byte, and every "{...}" one of {hostname}, {node_id} and {classes}; the
// program (i == 0) has no placeholder at all. Unpaired braces are literal.
func checkCommandArg(i int, arg string) error {
	return confload.CheckCommandArg(i, arg, "{hostname}", "{node_id}", "{classes}")
}

// checkKeyHash checks the shape of a pinned key hash: sha256//<base64>,
// sha512//<base64>, sha256:<hex> or sha512:<hex>, of the right length.
func checkKeyHash(s string) error {
	var algo, digest string
	var sum []byte
	var err error
	if a, d, ok := strings.Cut(s, "//"); ok {
		algo, digest = a, d
		sum, err = base64.StdEncoding.Strict().DecodeString(digest)
	} else if a, d, ok := strings.Cut(s, ":"); ok {
		algo, digest = a, d
		sum, err = hex.DecodeString(digest)
	} else {
		return fmt.Errorf("%q is not sha256//<base64>, sha512//<base64>, sha256:<hex> or sha512:<hex>", s)
	}
	want := map[string]int{"sha256": 32, "sha512": 64}[algo]
	switch {
	case want == 0:
		return fmt.Errorf("%q: unknown hash %q (want sha256 or sha512)", s, algo)
	case err != nil || digest == "":
		return fmt.Errorf("%q: the digest is not valid base64 (after //) or hex (after :)", s)
	case len(sum) != want:
		return fmt.Errorf("%q: a %s digest is %d bytes, got %d", s, algo, want, len(sum))
	}
	return nil
}
