// Package config loads and validates the keel-relay configuration.
//
// Sources, in increasing precedence: the embedded default (default.yaml), the
// YAML file given with --config (or the default path, if present), and
// environment variables KEEL_<SECTION>_<KEY> such as KEEL_HTTP_LISTEN or
// KEEL_FORWARD_TLS_CA_FILE. In the environment, lists are comma-separated and a
// variable that is set but empty sets its key to empty. Unknown keys in the file
// are errors; unknown KEEL_* variables are ignored (other tools use some).
package config

import (
	_ "embed" // for the embedded default configuration
	"time"

	"github.com/keel-relay/keel/internal/confload"
)

//go:embed default.yaml
var defaultYAML string

// EnvPrefix is the prefix of the environment variables that override config keys:
// the key "http.max_body" is set by KEEL_HTTP_MAX_BODY.
const EnvPrefix = "KEEL_"

// Config is the relay configuration. Field tags are the YAML key names.
type Config struct {
	NodeID            string            `mapstructure:"node_id"`
	Role              string            `mapstructure:"role"`
	Upstream          string            `mapstructure:"upstream"`
	DataDir           string            `mapstructure:"data_dir"`
	NodesFile         string            `mapstructure:"nodes_file"`
	NodesPollInterval time.Duration     `mapstructure:"nodes_poll_interval"`
	ShutdownGrace     time.Duration     `mapstructure:"shutdown_grace"`
	Log               LogConfig         `mapstructure:"log"`
	HTTP              HTTPConfig        `mapstructure:"http"`
	Admin             AdminConfig       `mapstructure:"admin"`
	SharedFiles       SharedFilesConfig `mapstructure:"shared_files"`
	Forward           ForwardConfig     `mapstructure:"forward"`
	RemoteRun         RemoteRunConfig   `mapstructure:"remote_run"`
	Storage           StorageConfig     `mapstructure:"storage"`
	Edge              EdgeConfig        `mapstructure:"edge"`
	Memory            MemoryConfig      `mapstructure:"memory"`
	// The rest of a relay box (SPEC-relay-box.md): agents' uploads and their delivery
	// upstream, the shared folder, policies, and the node client certificates.
	AgentUploads AgentUploadsConfig `mapstructure:"agent_uploads"`
	UpstreamAuth UpstreamAuthConfig `mapstructure:"upstream_auth"`
	SharedFolder SharedFolderConfig `mapstructure:"shared_folder"`
	Policies     PoliciesConfig     `mapstructure:"policies"`
	TLS          TLSConfig          `mapstructure:"tls"`
}

// Roles a relay can have.
const (
	RoleRoot  = "root"
	RoleRelay = "relay"
)

// LogConfig is the "log" section (shared with keel-agent's configuration).
type LogConfig = confload.LogConfig

// HTTPConfig is the "http" section: the relay API listener.
type HTTPConfig struct {
	Listen               string        `mapstructure:"listen"`
	AllowedNetworks      []string      `mapstructure:"allowed_networks"`
	PolicyServerNetworks []string      `mapstructure:"policy_server_networks"`
	MaxBody              ByteSize      `mapstructure:"max_body"`
	TLSCert              string        `mapstructure:"tls_cert"`
	TLSKey               string        `mapstructure:"tls_key"`
	ReadHeaderTimeout    time.Duration `mapstructure:"read_header_timeout"`
	IdleTimeout          time.Duration `mapstructure:"idle_timeout"`
	BodyIdleTimeout      time.Duration `mapstructure:"body_idle_timeout"`
	MaxConnections       int           `mapstructure:"max_connections"` // open at once; more wait in the kernel's accept queue
	MaxConcurrentUploads int           `mapstructure:"max_concurrent_uploads"`
	MaxUploadsPerClient  int           `mapstructure:"max_uploads_per_client"` // slots one IPv4 address or IPv6 /64 may hold; 0 = a quarter of max_concurrent_uploads
	MinUploadRate        ByteSize      `mapstructure:"min_upload_rate"`        // per second, after body_idle_timeout; 0 = no minimum
	UploadSlotWait       time.Duration `mapstructure:"upload_slot_wait"`       // longest wait for an upload slot before 503
	UploadPreemptRate    ByteSize      `mapstructure:"upload_preempt_rate"`    // per second: slower slot holders may be cut when others wait; 0 = never

	// LocalListen is a second relay API listener, plain HTTP, for the tools on the box that
	// call relayd's 127.0.0.1:3030 while listen speaks TLS on 443; "" = none.
	LocalListen string `mapstructure:"local_listen"`

	// RequestLog says which relay API requests get a log line: RequestLogAll, RequestLogErrors
	// or RequestLogOff. Answers of 500 and above are logged whatever it says. Reloadable.
	RequestLog string `mapstructure:"request_log"`
}

// The values of http.request_log.
const (
	RequestLogAll    = "all"    // every request, at info
	RequestLogErrors = "errors" // answers of 400 and above but 404, the default
	RequestLogOff    = "off"    // only answers of 500 and above
)

// AdminConfig is the "admin" section: /metrics and the local admin API.
type AdminConfig struct {
	Listen string `mapstructure:"listen"` // empty = disabled
	// MetricsNetworks are the clients (CIDRs or IPs) that may scrape GET /metrics besides
	// loopback; the rest of the admin API is loopback only, whatever this says.
	MetricsNetworks []string `mapstructure:"metrics_networks"`
	// TokenFile, when set, holds the bearer token every admin request but GET /metrics must
	// carry (the relay creates it, 0600, on first start; the CLI reads it). Empty: the
	// admin API trusts every loopback client.
	TokenFile string `mapstructure:"token_file"`
}

// SharedFilesConfig is the "shared_files" section.
type SharedFilesConfig struct {
	CleanupInterval time.Duration `mapstructure:"cleanup_interval"`
}

// ForwardConfig is the "forward" section: delivery of queued forwards to the
// upstream and to sub-relays.
type ForwardConfig struct {
	MinBackoff     time.Duration    `mapstructure:"min_backoff"`
	MaxBackoff     time.Duration    `mapstructure:"max_backoff"`
	Concurrency    int              `mapstructure:"concurrency"`
	AttemptTimeout time.Duration    `mapstructure:"attempt_timeout"`
	MaxJobs        int              `mapstructure:"max_jobs"`
	SubRelayURL    string           `mapstructure:"sub_relay_url"` // {hostname} and {node_id} are replaced
	AllowHTTP      bool             `mapstructure:"allow_http"`
	TLS            ForwardTLSConfig `mapstructure:"tls"`
}

// ForwardTLSConfig is the "forward.tls" section: how the upstream is verified.
type ForwardTLSConfig struct {
	CAFile             string `mapstructure:"ca_file"`
	KeyHash            string `mapstructure:"key_hash"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
}

// RemoteRunConfig is the "remote_run" section: how agent runs are triggered on nodes.
type RemoteRunConfig struct {
	Command     []string      `mapstructure:"command"`       // argv, never a shell string; placeholders {hostname} {node_id} {classes}
	Concurrency int           `mapstructure:"concurrency"`   // node runs at once, per relay
	Timeout     time.Duration `mapstructure:"timeout"`       // per-node deadline
	MaxCalls    int           `mapstructure:"max_calls"`     // remote-run API calls in progress at once; more get 429
	SubRelayURL string        `mapstructure:"sub_relay_url"` // base URL of a sub-relay's API; {hostname} and {node_id} replaced
}

// StorageConfig is the "storage" section: database tuning.
type StorageConfig struct {
	MemTableSize     ByteSize `mapstructure:"mem_table_size"`
	NumMemtables     int      `mapstructure:"num_memtables"`
	BlockCacheSize   ByteSize `mapstructure:"block_cache_size"`
	IndexCacheSize   ByteSize `mapstructure:"index_cache_size"`
	ValueLogFileSize ByteSize `mapstructure:"value_log_file_size"`
	ValueThreshold   ByteSize `mapstructure:"value_threshold"`
	NumCompactors    int      `mapstructure:"num_compactors"`
	ChunkSize        ByteSize `mapstructure:"chunk_size"`
	SyncWrites       bool     `mapstructure:"sync_writes"`
	// MinFreeSpace is the free space writes must leave in data_dir's file system: Auto
	// (what the storage engine needs to go on without crashing, worked out from the
	// settings above and the size of the database) or a size, which can raise it, never
	// lower it. Reloadable.
	MinFreeSpace AutoByteSize `mapstructure:"min_free_space"`
}

// EdgeConfig is the "edge" section: the gRPC NodeClusterService for edge daemons.
type EdgeConfig struct {
	Enabled              bool            `mapstructure:"enabled"`
	Listen               string          `mapstructure:"listen"`
	TLS                  EdgeTLSConfig   `mapstructure:"tls"`
	AllowPlaintext       bool            `mapstructure:"allow_plaintext"` // a non-loopback listen without TLS
	Role                 string          `mapstructure:"role"`            // controller | hybrid | relay_coordinator | worker
	HeartbeatInterval    time.Duration   `mapstructure:"heartbeat_interval"`
	StaleThreshold       time.Duration   `mapstructure:"stale_threshold"`
	TokenTTL             time.Duration   `mapstructure:"token_ttl"`
	OverlapWindow        time.Duration   `mapstructure:"overlap_window"`
	AttestPerMinute      int             `mapstructure:"attest_per_minute"`
	MaxPendingChallenges int             `mapstructure:"max_pending_challenges"`
	ChallengesPerSource  int             `mapstructure:"challenges_per_source"`
	ChallengesPerNetwork int             `mapstructure:"challenges_per_network"`
	ReservedChallenges   int             `mapstructure:"reserved_challenges"`
	TrustedIssuers       []TrustedIssuer `mapstructure:"trusted_issuers"`
	HelloTimeout         time.Duration   `mapstructure:"hello_timeout"`
	StreamQueue          int             `mapstructure:"stream_queue"`
	FlushInterval        time.Duration   `mapstructure:"flush_interval"`
	DrainGrace           time.Duration   `mapstructure:"drain_grace"`
	MaxStreams           int             `mapstructure:"max_streams"`
	// Reflection serves the gRPC server reflection API (grpcurl list/describe) on the edge
	// listener; auto: on when edge.listen is a loopback address.
	Reflection AutoBool `mapstructure:"reflection"`
}

// ReflectionOn says whether the edge listener serves gRPC reflection (edge.reflection,
// auto resolved from edge.listen).
func (e EdgeConfig) ReflectionOn() bool { return e.Reflection.Resolve(IsLoopbackListen(e.Listen)) }

// MemoryConfig is the "memory" section: the memory budget the relay sizes itself to.
type MemoryConfig struct {
	// Limit is the budget: Auto (the limit the process runs under: its cgroup's memory.max or
	// memory.limit_in_bytes, else the machine's RAM) or a size, which cannot exceed that limit.
	// The Go memory limit, the storage caches, the upload slots, the edge streams and the
	// remote-run buffers are lowered to fit it; near it, new work is refused.
	Limit AutoByteSize `mapstructure:"limit"`
}

// AgentUploadsConfig is the "agent_uploads" section: inventories and reports agents PUT
// (/inventories/, /inventory-updates/, /reports/), kept until delivered upstream.
type AgentUploadsConfig struct {
	// HTPasswdInitial is the Apache htpasswd file of /inventories/ (nodes not yet accepted);
	// HTPasswd that of /inventory-updates/ and /reports/. A missing file authenticates nobody.
	HTPasswdInitial string `mapstructure:"htpasswd_initial"`
	HTPasswd        string `mapstructure:"htpasswd"`
	// Retention is how long an undelivered upload is kept before it expires (counted).
	Retention time.Duration `mapstructure:"retention"`
	// MaxWaiting bounds the uploads kept (waiting or failed); beyond it new ones get 507.
	MaxWaiting int `mapstructure:"max_waiting"`
	// RootDir (role root only) is where uploads are handed to the Rudder server:
	// <root_dir>/inventories/incoming, inventories/accepted-nodes-updates, reports/incoming.
	// Empty at the root: the upload paths answer 404.
	RootDir string `mapstructure:"root_dir"`
}

// UpstreamAuthConfig is the "upstream_auth" section: the HTTP Basic credentials uploads are
// delivered upstream with.
type UpstreamAuthConfig struct {
	User string `mapstructure:"user"`
	// PasswordFile holds the password of /inventory-updates/ and /reports/ upstream;
	// DefaultPasswordFile that of /inventories/ (empty: "rudder").
	PasswordFile        string `mapstructure:"password_file"`
	DefaultPasswordFile string `mapstructure:"default_password_file"`
}

// SharedFolderConfig is the "shared_folder" section: the files agents download from
// /rudder/relay-api/shared-folder/.
type SharedFolderConfig struct {
	Path string `mapstructure:"path"`
}

// PoliciesConfig is the "policies" section: /policies/<uuid>/ and /common/.
type PoliciesConfig struct {
	Path       string `mapstructure:"path"`
	CommonPath string `mapstructure:"common_path"`
}

// TLSConfig is the "tls" section: the node client certificates the relay API's TLS
// listener accepts.
type TLSConfig struct {
	// NodeCerts is a PEM bundle of node certificates (Rudder's nodescerts.pem); a client
	// certificate is accepted only if it is one of them, and names its node by its UID.
	NodeCerts string `mapstructure:"node_certs"`
}

// EdgeTLSConfig is the "edge.tls" section: the certificate of the edge listener.
type EdgeTLSConfig struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// TrustedIssuer is an upstream issuer of enrollment tokens: its "iss" and the file of its
// Ed25519 public key (PEM). In KEEL_EDGE_TRUSTED_ISSUERS each item is "issuer=file".
type TrustedIssuer struct {
	Issuer        string `mapstructure:"issuer" yaml:"issuer"`
	PublicKeyFile string `mapstructure:"public_key_file" yaml:"public_key_file"`
}

// Edge roles (edge.role).
const (
	EdgeRoleController       = "controller"
	EdgeRoleHybrid           = "hybrid"
	EdgeRoleRelayCoordinator = "relay_coordinator"
	EdgeRoleWorker           = "worker"
)

// files is the relay's kind of configuration: its schema and file name.
var files = confload.Files[Config, *Config]{Schema: schema(), Name: "relay.yaml"}

// DefaultPath returns the config file used when --config is not given:
// /etc/keel/relay.yaml, or %ProgramData%\Keel\relay.yaml on Windows.
func DefaultPath() string { return files.DefaultPath() }

// Load returns the embedded default overridden by the file at path and then by
// KEEL_* environment variables, validated. When explicit is true (the path came
// from --config) the file must exist; otherwise a missing file means the embedded
// default alone. Errors start with "config" and name the file when there is one.
func Load(path string, explicit bool) (*Config, error) { return files.Load(path, explicit) }

// LoadBytes is Load for a file's content and an environment lookup function
// (such as os.LookupEnv); a nil env means no environment.
func LoadBytes(yamlText []byte, env func(string) (string, bool)) (*Config, error) {
	return files.LoadBytes(yamlText, env)
}

// Default returns the embedded default configuration (no file, no environment).
// It panics only if the embedded default is invalid, which the tests rule out.
func Default() *Config { return files.Default() }

// EnvName returns the environment variable that overrides a dotted config key,
// e.g. "forward.tls.ca_file" -> "KEEL_FORWARD_TLS_CA_FILE".
func EnvName(key string) string { return files.EnvName(key) }

// YAML returns the configuration as YAML with the config file's key names, in a
// form Load reads back to the same Config: durations and sizes in their human form
// ("5m", "256MiB"), lists in flow style.
func (c *Config) YAML() ([]byte, error) { return files.YAML(c) }
