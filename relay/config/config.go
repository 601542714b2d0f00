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
	"bytes"
	_ "embed" // for the embedded default configuration
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"runtime"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
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
}

// Roles a relay can have.
const (
	RoleRoot  = "root"
	RoleRelay = "relay"
)

// LogConfig is the "log" section.
type LogConfig struct {
	Level  string `mapstructure:"level"`  // debug | info | warn | error
	Format string `mapstructure:"format"` // text | json
}

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
	MaxConcurrentUploads int           `mapstructure:"max_concurrent_uploads"`
	MinUploadRate        ByteSize      `mapstructure:"min_upload_rate"`  // per second, after body_idle_timeout; 0 = no minimum
	UploadSlotWait       time.Duration `mapstructure:"upload_slot_wait"` // longest wait for an upload slot before 503
}

// AdminConfig is the "admin" section: /metrics and the local admin API.
type AdminConfig struct {
	Listen string `mapstructure:"listen"` // empty = disabled
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
	TrustedIssuers       []TrustedIssuer `mapstructure:"trusted_issuers"`
	HelloTimeout         time.Duration   `mapstructure:"hello_timeout"`
	StreamQueue          int             `mapstructure:"stream_queue"`
	FlushInterval        time.Duration   `mapstructure:"flush_interval"`
	DrainGrace           time.Duration   `mapstructure:"drain_grace"`
	MaxStreams           int             `mapstructure:"max_streams"`
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

// DefaultPath returns the config file used when --config is not given:
// /etc/keel/relay.yaml, or %ProgramData%\Keel\relay.yaml on Windows.
func DefaultPath() string {
	return defaultPath(runtime.GOOS, os.Getenv)
}

func defaultPath(goos string, getenv func(string) string) string {
	if goos != "windows" {
		return "/etc/keel/relay.yaml"
	}
	dir := strings.TrimRight(getenv("ProgramData"), `\/`)
	if dir == "" {
		dir = `C:\ProgramData`
	}
	return dir + `\Keel\relay.yaml`
}

// Load returns the embedded default overridden by the file at path and then by
// KEEL_* environment variables, validated. When explicit is true (the path came
// from --config) the file must exist; otherwise a missing file means the embedded
// default alone. Errors start with "config" and name the file when there is one.
func Load(path string, explicit bool) (*Config, error) {
	var file []byte
	prefix := "config " + path
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		file = b
	case !explicit && errors.Is(err, fs.ErrNotExist):
		prefix = "config"
	default:
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := load(file, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	return c, nil
}

// LoadBytes is Load for a file's content and an environment lookup function
// (such as os.LookupEnv); a nil env means no environment.
func LoadBytes(yamlText []byte, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	return load(yamlText, env)
}

// Default returns the embedded default configuration (no file, no environment).
// It panics only if the embedded default is invalid, which the tests rule out.
func Default() *Config {
	c, err := LoadBytes(nil, nil)
	if err != nil {
		panic("config: embedded default is invalid: " + err.Error())
	}
	return c
}

// load layers the embedded default, the file content and the environment in one
// viper instance, decodes the result strictly and validates it.
func load(file []byte, env func(string) (string, bool)) (*Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(strings.NewReader(defaultYAML)); err != nil {
		return nil, fmt.Errorf("embedded default: %w", err)
	}
	configType := reflect.TypeFor[Config]()
	if len(file) > 0 {
		m, err := parseFile(file, configType)
		if err != nil {
			return nil, err
		}
		if err := v.MergeConfigMap(m); err != nil {
			return nil, err
		}
	}
	// Every key is looked up explicitly: viper's AutomaticEnv only reaches keys it
	// already knows, and unknown KEEL_* variables (other tools') are ignored.
	fromEnv := make(map[string]string)
	for _, key := range leafKeys(configType, "") {
		name := EnvName(key)
		if val, ok := env(name); ok {
			v.Set(key, val)
			fromEnv[key] = name
		}
	}
	var c Config
	err := v.UnmarshalExact(&c, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = mapstructure.DecodeHookFuncType(decodeHook)
		dc.WeaklyTypedInput = false
	})
	if err != nil {
		return nil, withEnvSource(errors.Join(decodeErrors(err)...), fromEnv)
	}
	if c.HTTP.AllowedNetworks == nil {
		c.HTTP.AllowedNetworks = []string{}
	}
	if c.HTTP.PolicyServerNetworks == nil {
		c.HTTP.PolicyServerNetworks = []string{}
	}
	if c.Edge.TrustedIssuers == nil {
		c.Edge.TrustedIssuers = []TrustedIssuer{}
	}
	if err := c.Validate(); err != nil {
		return nil, withEnvSource(err, fromEnv)
	}
	return &c, nil
}

// EnvName returns the environment variable that overrides a dotted config key,
// e.g. "forward.tls.ca_file" -> "KEEL_FORWARD_TLS_CA_FILE".
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// YAML returns the configuration as YAML with the config file's key names, in a
// form Load reads back to the same Config.
func (c *Config) YAML() ([]byte, error) {
	n, err := toNode(reflect.ValueOf(c).Elem())
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return buf.Bytes(), nil
}

// toNode turns a config value into a YAML node; durations and sizes are written
// in their human form ("5m", "256MiB"), lists in flow style.
func toNode(v reflect.Value) (*yaml.Node, error) {
	n := new(yaml.Node)
	var err error
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		err = n.Encode(formatDuration(time.Duration(v.Int())))
	case v.Type() == reflect.TypeFor[ByteSize]():
		err = n.Encode(ByteSize(v.Int()).String())
	case v.Kind() == reflect.Struct:
		n.Kind = yaml.MappingNode
		for i := range v.NumField() {
			key := new(yaml.Node)
			if err := key.Encode(tagName(v.Type().Field(i))); err != nil {
				return nil, err
			}
			val, err := toNode(v.Field(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, key, val)
		}
	default:
		err = n.Encode(v.Interface())
		if n.Kind == yaml.SequenceNode {
			n.Style = yaml.FlowStyle
		}
	}
	if err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return n, nil
}

// formatDuration is time.Duration.String without trailing zero units: "2m", "1h".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
