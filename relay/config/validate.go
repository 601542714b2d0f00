package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/keel-relay/keel/internal/confload"
	"github.com/keel-relay/keel/internal/wire/ids"
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
// errors.Join), each message starting with the dotted key. The sections are
// checked in the order of the file.
func (c *Config) Validate() error {
	var p confload.Problems
	c.checkTop(&p)
	c.Log.Check(&p)
	c.HTTP.check(&p)
	c.Admin.check(&p, c.HTTP.Listen)
	c.SharedFiles.check(&p)
	c.Forward.check(&p)
	c.RemoteRun.check(&p, c.Forward.AllowHTTP)
	c.Storage.check(&p)
	c.Edge.check(&p)
	c.Memory.check(&p)
	c.AgentUploads.check(&p, c.Role)
	c.UpstreamAuth.check(&p)
	return p.Err()
}

// positive records a problem with key unless d > 0.
func positive(p *confload.Problems, key string, d time.Duration) {
	if d <= 0 {
		p.Add(key, "must be > 0, got %s", formatDuration(d))
	}
}

// checkNetworks records a problem for every bad item of a network list.
func checkNetworks(p *confload.Problems, key string, list []string) {
	for i, s := range list {
		if err := checkNetwork(s); err != nil {
			p.Add(fmt.Sprintf("%s[%d]", key, i), "%v", err)
		}
	}
}

// checkTop checks the keys outside any section: node_id, role, upstream, data_dir,
// nodes_poll_interval and shutdown_grace.
func (c *Config) checkTop(p *confload.Problems) {
	if err := ids.ValidNodeID(c.NodeID); err != nil {
		p.Add("node_id", "%v", err)
	}
	switch c.Role {
	case RoleRoot, RoleRelay:
		if c.Role == RoleRelay && c.Upstream == "" {
			p.Add("upstream", "required when role is relay")
		} else if c.Upstream != "" {
			if err := checkBaseURL(c.Upstream, c.Forward.AllowHTTP); err != nil {
				p.Add("upstream", "%v", err)
			}
		}
	default:
		p.Add("role", "%q is not root or relay", c.Role)
	}
	if c.DataDir == "" {
		p.Add("data_dir", "must not be empty")
	}
	if c.NodesPollInterval < 0 {
		p.Add("nodes_poll_interval", "must be >= 0, got %s", formatDuration(c.NodesPollInterval))
	}
	positive(p, "shutdown_grace", c.ShutdownGrace)
}

// check checks the http section: the listener, then its upload limits.
func (h *HTTPConfig) check(p *confload.Problems) {
	if err := checkListen(h.Listen); err != nil {
		p.Add("http.listen", "%v", err)
	}
	checkNetworks(p, "http.allowed_networks", h.AllowedNetworks)
	checkNetworks(p, "http.policy_server_networks", h.PolicyServerNetworks)
	if h.MaxBody <= 0 || h.MaxBody > MaxBodyLimit {
		p.Add("http.max_body", "must be > 0 and <= %s, got %s", MaxBodyLimit, h.MaxBody)
	}
	if h.LocalListen != "" {
		if err := checkListen(h.LocalListen); err != nil {
			p.Add("http.local_listen", "%v", err)
		} else if h.LocalListen == h.Listen {
			p.Add("http.local_listen", "%q is http.listen already", h.LocalListen)
		}
	}
	switch {
	case h.TLSCert != "" && h.TLSKey == "":
		p.Add("http.tls_key", "required when http.tls_cert is set")
	case h.TLSCert == "" && h.TLSKey != "":
		p.Add("http.tls_cert", "required when http.tls_key is set")
	}
	positive(p, "http.read_header_timeout", h.ReadHeaderTimeout)
	positive(p, "http.idle_timeout", h.IdleTimeout)
	positive(p, "http.body_idle_timeout", h.BodyIdleTimeout)
	h.checkUploads(p)
}

// checkUploads checks the connection and upload slot limits of the http section.
func (h *HTTPConfig) checkUploads(p *confload.Problems) {
	if h.MaxConnections < 1 || h.MaxConnections > MaxConnections {
		p.Add("http.max_connections", "must be between 1 and %d, got %d", MaxConnections, h.MaxConnections)
	} else if h.MaxConnections < h.MaxConcurrentUploads {
		p.Add("http.max_connections", "%d is fewer than http.max_concurrent_uploads (%d): every upload needs a connection", h.MaxConnections, h.MaxConcurrentUploads)
	}
	if h.MaxConcurrentUploads < 1 {
		p.Add("http.max_concurrent_uploads", "must be >= 1, got %d", h.MaxConcurrentUploads)
	}
	if h.MaxUploadsPerClient < 0 || h.MaxUploadsPerClient > max(h.MaxConcurrentUploads, 1) {
		p.Add("http.max_uploads_per_client", "must be 0 (a quarter of http.max_concurrent_uploads) or 1 to http.max_concurrent_uploads (%d), got %d", h.MaxConcurrentUploads, h.MaxUploadsPerClient)
	}
	if h.MinUploadRate < 0 {
		p.Add("http.min_upload_rate", "must not be negative, got %s", h.MinUploadRate)
	}
	positive(p, "http.upload_slot_wait", h.UploadSlotWait)
	if h.UploadPreemptRate < 0 {
		p.Add("http.upload_preempt_rate", "must not be negative, got %s", h.UploadPreemptRate)
	}
}

// check checks the admin section; httpListen is http.listen, which admin.listen must
// not share.
func (a *AdminConfig) check(p *confload.Problems, httpListen string) {
	checkNetworks(p, "admin.metrics_networks", a.MetricsNetworks)
	if a.Listen != "" {
		if err := checkListen(a.Listen); err != nil {
			p.Add("admin.listen", "%v", err)
		} else if a.Listen == httpListen && !strings.HasSuffix(httpListen, ":0") {
			p.Add("admin.listen", "%q is also http.listen (use another port, or empty to disable)", a.Listen)
		}
	}
	if tf := a.TokenFile; tf != "" && (strings.HasSuffix(tf, "/") || strings.HasSuffix(tf, `\`) || strings.ContainsRune(tf, 0)) {
		p.Add("admin.token_file", "%q is not a file path", tf)
	}
}

// check checks the shared_files section.
func (s *SharedFilesConfig) check(p *confload.Problems) {
	if s.CleanupInterval < time.Second {
		p.Add("shared_files.cleanup_interval", "must be >= 1s, got %s", formatDuration(s.CleanupInterval))
	}
}

// check checks the forward section.
func (f *ForwardConfig) check(p *confload.Problems) {
	positive(p, "forward.min_backoff", f.MinBackoff)
	if f.MaxBackoff < f.MinBackoff {
		p.Add("forward.max_backoff", "%s is less than forward.min_backoff (%s)", formatDuration(f.MaxBackoff), formatDuration(f.MinBackoff))
	}
	if f.Concurrency < 1 || f.Concurrency > MaxForwardWorkers {
		p.Add("forward.concurrency", "must be between 1 and %d, got %d", MaxForwardWorkers, f.Concurrency)
	}
	positive(p, "forward.attempt_timeout", f.AttemptTimeout)
	if f.MaxJobs < 1 {
		p.Add("forward.max_jobs", "must be >= 1, got %d", f.MaxJobs)
	}
	if err := checkSubRelayURL(f.SubRelayURL, f.AllowHTTP); err != nil {
		p.Add("forward.sub_relay_url", "%v", err)
	}
	if f.TLS.KeyHash != "" {
		if err := checkKeyHash(f.TLS.KeyHash); err != nil {
			p.Add("forward.tls.key_hash", "%v", err)
		}
	}
}

// check checks the remote_run section; allowHTTP is forward.allow_http.
func (r *RemoteRunConfig) check(p *confload.Problems, allowHTTP bool) {
	if len(r.Command) == 0 {
		p.Add("remote_run.command", "must have at least one element (the program to run)")
	}
	for i, arg := range r.Command {
		if err := checkCommandArg(i, arg); err != nil {
			p.Add(fmt.Sprintf("remote_run.command[%d]", i), "%v", err)
		}
	}
	if r.Concurrency < 1 || r.Concurrency > MaxRemoteRunWorkers {
		p.Add("remote_run.concurrency", "must be between 1 and %d, got %d", MaxRemoteRunWorkers, r.Concurrency)
	}
	if r.Timeout <= 0 || r.Timeout > MaxRemoteRunTimeout {
		p.Add("remote_run.timeout", "must be > 0 and <= %s, got %s", formatDuration(MaxRemoteRunTimeout), formatDuration(r.Timeout))
	}
	if r.MaxCalls < 1 || r.MaxCalls > MaxRemoteRunCalls {
		p.Add("remote_run.max_calls", "must be between 1 and %d, got %d", MaxRemoteRunCalls, r.MaxCalls)
	}
	if err := checkSubRelayURL(r.SubRelayURL, allowHTTP); err != nil {
		p.Add("remote_run.sub_relay_url", "%v", err)
	}
}

// check checks the storage section: the sizes, then the value threshold against them.
func (s *StorageConfig) check(p *confload.Problems) {
	for _, sz := range []struct {
		key string
		v   ByteSize
	}{
		{"storage.mem_table_size", s.MemTableSize},
		{"storage.block_cache_size", s.BlockCacheSize},
		{"storage.index_cache_size", s.IndexCacheSize},
	} {
		if sz.v <= 0 {
			p.Add(sz.key, "must be > 0, got %s", sz.v)
		}
	}
	if s.NumMemtables < 1 {
		p.Add("storage.num_memtables", "must be >= 1, got %d", s.NumMemtables)
	}
	if s.ValueLogFileSize < MinValueLogFileSize || s.ValueLogFileSize > MaxValueLogFileSize {
		p.Add("storage.value_log_file_size", "must be at least 1MiB and below 1GiB (value-log files are mmapped, which 32-bit ARM cannot do for larger files), got %s", s.ValueLogFileSize)
	}
	chunkOK := s.ChunkSize >= MinChunkSize && s.ChunkSize <= MaxChunkSize
	if !chunkOK {
		p.Add("storage.chunk_size", "must be between %s and %s, got %s", MinChunkSize, MaxChunkSize, s.ChunkSize)
	}
	s.checkValueThreshold(p, chunkOK)
	if s.NumCompactors < 2 {
		p.Add("storage.num_compactors", "must be >= 2, got %d", s.NumCompactors)
	}
	if s.MinFreeSpace != Auto && s.MinFreeSpace < 0 {
		p.Add("storage.min_free_space", "must be auto or a size, got %d", int64(s.MinFreeSpace))
	}
}

// checkValueThreshold checks storage.value_threshold; chunkOK says whether
// storage.chunk_size is valid (it is compared with it only then).
func (s *StorageConfig) checkValueThreshold(p *confload.Problems, chunkOK bool) {
	switch {
	case s.ValueThreshold <= 0:
		p.Add("storage.value_threshold", "must be > 0, got %s", s.ValueThreshold)
	case chunkOK && s.ValueThreshold >= s.ChunkSize:
		p.Add("storage.value_threshold", "%s must be less than storage.chunk_size (%s)", s.ValueThreshold, s.ChunkSize)
	case s.ValueThreshold > MaxValueThreshold:
		p.Add("storage.value_threshold", "must be <= %s, got %s", MaxValueThreshold, s.ValueThreshold)
	case s.MemTableSize > 0 && int64(s.ValueThreshold) > int64(s.MemTableSize)*15/100:
		p.Add("storage.value_threshold", "%s is more than 15%% of storage.mem_table_size (%s), which the storage engine refuses", s.ValueThreshold, s.MemTableSize)
	}
}

// check checks the memory section.
func (m *MemoryConfig) check(p *confload.Problems) {
	if l := m.Limit; l != Auto && l < AutoByteSize(MinMemoryLimit) {
		p.Add("memory.limit", "must be auto or at least %s, got %s", MinMemoryLimit, l)
	}
}

// check checks the agent_uploads section.
func (a *AgentUploadsConfig) check(p *confload.Problems, role string) {
	positive(p, "agent_uploads.retention", a.Retention)
	if a.MaxWaiting < 1 {
		p.Add("agent_uploads.max_waiting", "must be >= 1, got %d", a.MaxWaiting)
	}
	if a.RootDir != "" && role != RoleRoot {
		p.Add("agent_uploads.root_dir", "is for role root only; a relay delivers uploads upstream")
	}
}

// check checks the upstream_auth section.
func (u *UpstreamAuthConfig) check(p *confload.Problems) {
	if u.User == "" || strings.ContainsAny(u.User, ":\r\n") {
		p.Add("upstream_auth.user", "must be a user name without ':' or line breaks, got %q", u.User)
	}
}
