// Package config loads and validates the keel-agent configuration (agent.yaml).
//
// Sources, in increasing precedence: the embedded default (default.yaml), the
// YAML file given with --config (or the default path, if present), and
// environment variables KEEL_AGENT_<SECTION>_<KEY> such as KEEL_AGENT_NODE_ID or
// KEEL_AGENT_EDGE_TOOLS_SHELL_ENABLED. In the environment, lists are
// comma-separated and a variable that is set but empty sets its key to empty.
// Unknown keys in the file are errors; unknown KEEL_AGENT_* variables are
// ignored. The loader is keel-relay's too (internal/confload): the agent does
// not import relay/config, it never depends on the daemon's internals.
package config

import (
	_ "embed" // for the embedded default configuration
	"time"

	"github.com/keel-relay/keel/internal/confload"
)

//go:embed default.yaml
var defaultYAML string

// EnvPrefix is the prefix of the environment variables that override config
// keys: the key "http.timeout" is set by KEEL_AGENT_HTTP_TIMEOUT.
const EnvPrefix = "KEEL_AGENT_"

// Config is the agent configuration. Field tags are the YAML key names.
type Config struct {
	NodeID        string     `mapstructure:"node_id"`
	UUIDFile      string     `mapstructure:"uuid_file"`
	RelayURL      string     `mapstructure:"relay_url"`
	KeyFile       string     `mapstructure:"key_file"`
	KeyPassphrase string     `mapstructure:"key_passphrase"`
	Hostname      string     `mapstructure:"hostname"`
	KeyDate       string     `mapstructure:"keydate"`
	KeyID         string     `mapstructure:"keyid"`
	Log           LogConfig  `mapstructure:"log"`
	HTTP          HTTPConfig `mapstructure:"http"`
	Edge          EdgeConfig `mapstructure:"edge"`
}

// LogConfig is the "log" section (shared with keel-relay's configuration).
type LogConfig = confload.LogConfig

// HTTPConfig is the "http" section: requests to relay_url.
type HTTPConfig struct {
	Timeout time.Duration `mapstructure:"timeout"`
	CAFile  string        `mapstructure:"ca_file"`
	KeyHash string        `mapstructure:"key_hash"`
}

// EdgeConfig is the "edge" section: the edge daemon (keel-agent edge ...).
type EdgeConfig struct {
	Relay             string        `mapstructure:"relay"` // HOST:PORT; empty = edge daemon off
	KeyFile           string        `mapstructure:"key_file"`
	TokenFile         string        `mapstructure:"token_file"`
	CAFile            string        `mapstructure:"ca_file"`
	AllowPlaintext    bool          `mapstructure:"allow_plaintext"` // plaintext gRPC to a non-loopback relay
	HeartbeatInterval time.Duration `mapstructure:"heartbeat_interval"`
	Labels            []string      `mapstructure:"labels"` // custom labels, "key=value"
	Tools             ToolsConfig   `mapstructure:"tools"`
}

// Enabled reports whether the edge daemon is configured (edge.relay is set).
func (e EdgeConfig) Enabled() bool { return e.Relay != "" }

// ToolsConfig is the "edge.tools" section: what the relay may run on this node.
type ToolsConfig struct {
	MaxConcurrent int            `mapstructure:"max_concurrent"` // tools running at once
	AgentRun      AgentRunConfig `mapstructure:"agent_run"`
	Shell         ShellConfig    `mapstructure:"shell"`
}

// AgentRunConfig is "edge.tools.agent_run".
type AgentRunConfig struct {
	Command []string `mapstructure:"command"` // argv; placeholder {classes}
}

// ShellConfig is "edge.tools.shell".
type ShellConfig struct {
	Enabled bool `mapstructure:"enabled"`
}

// files is the agent's kind of configuration: its schema and file name.
var files = confload.Files[Config, *Config]{Schema: schema(), Name: "agent.yaml"}

// DefaultPath returns the config file used when --config is not given:
// /etc/keel/agent.yaml, or %ProgramData%\Keel\agent.yaml on Windows.
func DefaultPath() string { return files.DefaultPath() }

// Load returns the embedded default overridden by the file at path and then by
// KEEL_AGENT_* environment variables, validated. When explicit is true (the
// path came from --config) the file must exist; otherwise a missing file (or
// an empty path) means the embedded default alone. Errors start with "config"
// and name the file when there is one.
func Load(path string, explicit bool) (*Config, error) { return files.Load(path, explicit) }

// LoadBytes is Load for a file's content and an environment lookup function
// (such as os.LookupEnv); a nil env means no environment.
func LoadBytes(yamlText []byte, env func(string) (string, bool)) (*Config, error) {
	return files.LoadBytes(yamlText, env)
}

// Default returns the embedded default configuration (no file, no
// environment). It panics only if the embedded default is invalid, which the
// tests rule out.
func Default() *Config { return files.Default() }

// EnvName returns the environment variable that overrides a dotted config key,
// e.g. "edge.ca_file" -> "KEEL_AGENT_EDGE_CA_FILE".
func EnvName(key string) string { return files.EnvName(key) }

// YAML returns the configuration as YAML with the config file's key names, in
// a form Load reads back to the same Config: durations in their human form
// ("30s", "5m"), lists in flow style.
func (c *Config) YAML() ([]byte, error) { return files.YAML(c) }
