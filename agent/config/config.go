// Package config loads and validates the keel-agent configuration (agent.yaml).
//
// Sources, in increasing precedence: the embedded default (default.yaml), the
// YAML file given with --config (or the default path, if present), and
// environment variables KEEL_AGENT_<SECTION>_<KEY> such as KEEL_AGENT_NODE_ID or
// KEEL_AGENT_EDGE_TOOLS_SHELL_ENABLED. In the environment, lists are
// comma-separated and a variable that is set but empty sets its key to empty.
// Unknown keys in the file are errors; unknown KEEL_AGENT_* variables are
// ignored. The conventions are keel-relay's (relay/config), which the agent
// does not import: it never depends on the daemon's internals.
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

// LogConfig is the "log" section.
type LogConfig struct {
	Level  string `mapstructure:"level"`  // debug | info | warn | error
	Format string `mapstructure:"format"` // text | json
}

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

// DefaultPath returns the config file used when --config is not given:
// /etc/keel/agent.yaml, or %ProgramData%\Keel\agent.yaml on Windows.
func DefaultPath() string {
	return defaultPath(runtime.GOOS, os.Getenv)
}

func defaultPath(goos string, getenv func(string) string) string {
	if goos != "windows" {
		return "/etc/keel/agent.yaml"
	}
	dir := strings.TrimRight(getenv("ProgramData"), `\/`)
	if dir == "" {
		dir = `C:\ProgramData`
	}
	return dir + `\Keel\agent.yaml`
}

// Load returns the embedded default overridden by the file at path and then by
// KEEL_AGENT_* environment variables, validated. When explicit is true (the
// path came from --config) the file must exist; otherwise a missing file (or
// an empty path) means the embedded default alone. Errors start with "config"
// and name the file when there is one.
func Load(path string, explicit bool) (*Config, error) {
	var file []byte
	prefix := "config " + path
	if path == "" {
		prefix = "config"
	} else {
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			file = b
		case !explicit && errors.Is(err, fs.ErrNotExist):
			prefix = "config"
		default:
			return nil, fmt.Errorf("config: %w", err)
		}
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

// Default returns the embedded default configuration (no file, no
// environment). It panics only if the embedded default is invalid, which the
// tests rule out.
func Default() *Config {
	c, err := LoadBytes(nil, nil)
	if err != nil {
		panic("config: embedded default is invalid: " + err.Error())
	}
	return c
}

// load layers the embedded default, the file content and the environment in
// one viper instance, decodes the result strictly and validates it.
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
	// Every key is looked up explicitly: viper's AutomaticEnv only reaches keys
	// it already knows, and unknown KEEL_AGENT_* variables are ignored.
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
	if c.Edge.Tools.AgentRun.Command == nil {
		c.Edge.Tools.AgentRun.Command = []string{}
	}
	if c.Edge.Labels == nil {
		c.Edge.Labels = []string{}
	}
	if err := c.Validate(); err != nil {
		return nil, withEnvSource(err, fromEnv)
	}
	return &c, nil
}

// EnvName returns the environment variable that overrides a dotted config key,
// e.g. "edge.ca_file" -> "KEEL_AGENT_EDGE_CA_FILE".
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// YAML returns the configuration as YAML with the config file's key names, in
// a form Load reads back to the same Config.
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

// toNode turns a config value into a YAML node; durations are written in their
// human form ("30s", "5m"), lists in flow style.
func toNode(v reflect.Value) (*yaml.Node, error) {
	n := new(yaml.Node)
	var err error
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		err = n.Encode(formatDuration(time.Duration(v.Int())))
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
