package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/confload"
)

// contractDefault is the documented built-in default, written out by hand.
func contractDefault() *Config {
	return &Config{
		UUIDFile:      "/opt/rudder/etc/uuid.hive",
		RelayURL:      "http://127.0.0.1:3030",
		KeyFile:       "/var/rudder/cfengine-community/ppkeys/localhost.priv",
		KeyPassphrase: "Cfengine passphrase",
		Log:           LogConfig{Level: "info", Format: "text"},
		HTTP:          HTTPConfig{Timeout: 30 * time.Second},
		Edge: EdgeConfig{
			KeyFile:           "/var/lib/keel-agent/edge.key",
			TokenFile:         "/var/lib/keel-agent/token",
			HeartbeatInterval: 30 * time.Second,
			Labels:            []string{},
			Tools: ToolsConfig{
				MaxConcurrent: 4,
				AgentRun:      AgentRunConfig{Command: []string{"/opt/rudder/bin/rudder", "agent", "run", "-D", "{classes}"}},
			},
		},
	}
}

func envFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestDefault(t *testing.T) {
	if got := Default(); !reflect.DeepEqual(got, contractDefault()) {
		t.Errorf("default:\n%+v\nwant\n%+v", got, contractDefault())
	}
	if Default().Edge.Enabled() {
		t.Error("the edge daemon is on by default")
	}
}

// TestPackagedConfig: init/agent.yaml (the package's /etc/keel/agent.yaml) loads, and says
// what the embedded default says.
func TestPackagedConfig(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "init", "agent.yaml"), true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("init/agent.yaml differs from the embedded default:\n%+v\n%+v", c, Default())
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "agent.yaml")
	y := "node_id: node1\nrelay_url: https://relay.example:443/\nkey_file: /k.pem\nhttp: {timeout: 2m, key_hash: 'sha256//kGGR7iJmbBYCqkM5EAC8TuCpR3X2jE+9wbKHz1Kxh1w='}\n" +
		"edge:\n  relay: relay.example:7443\n  tools: {agent_run: {command: [/bin/run, '--classes={classes}']}, shell: {enabled: true}}\n"
	if err := os.WriteFile(good, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KEEL_AGENT_HOSTNAME", "node1.example")
	c, err := Load(good, true)
	if err != nil {
		t.Fatal(err)
	}
	want := contractDefault()
	want.NodeID, want.RelayURL, want.KeyFile, want.Hostname = "node1", "https://relay.example:443/", "/k.pem", "node1.example"
	want.HTTP.Timeout, want.HTTP.KeyHash = 2*time.Minute, "sha256//kGGR7iJmbBYCqkM5EAC8TuCpR3X2jE+9wbKHz1Kxh1w="
	want.Edge.Relay = "relay.example:7443"
	want.Edge.Tools = ToolsConfig{MaxConcurrent: 4, AgentRun: AgentRunConfig{Command: []string{"/bin/run", "--classes={classes}"}}, Shell: ShellConfig{Enabled: true}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%+v\nwant\n%+v", c, want)
	}
	if !c.Edge.Enabled() {
		t.Error("edge.relay set but Enabled() is false")
	}

	missing := filepath.Join(dir, "missing.yaml")
	if _, err := Load(missing, true); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("explicit missing file: %v, want an error naming it", err)
	}
	t.Setenv("KEEL_AGENT_HOSTNAME", "")
	if c, err := Load(missing, false); err != nil || !reflect.DeepEqual(c, contractDefault()) {
		t.Errorf("implicit missing file: %v, want the default", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("http: {timeout: forever}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad, true); err == nil || !strings.HasPrefix(err.Error(), "config "+bad+": http.timeout:") {
		t.Errorf("bad file: %v, want an error starting with the file and the key", err)
	}
}

// TestBadValues: every bad value is refused with a message naming its key.
func TestBadValues(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"node_id: 'a/b'", `node_id: invalid node id "a/b"`},
		{"node_id: ..", `node_id: invalid node id ".."`},
		{"node_id: 12", "node_id: expected a string, got integer 12"},
		{"uuid_file: ''", "uuid_file: must not be empty when node_id is empty"},
		{"relay_url: ''", "relay_url: must not be empty"},
		{"relay_url: relay.example:3030", "relay_url: \"relay.example:3030\" is not an absolute http:// or https:// URL"},
		{"relay_url: 'ftp://relay'", "is not an absolute http:// or https:// URL"},
		{"relay_url: 'http://'", "relay_url: \"http://\" has no host"},
		{"relay_url: 'http://u:p@relay'", "relay_url: \"http://u:p@relay\" must not contain user info"},
		{"relay_url: 'http://relay/?a=b'", "must not have a query or fragment"},
		{"relay_url: 'http://relay/#x'", "must not have a query or fragment"},
		{"key_file: ''", "key_file: must not be empty"},
		{"hostname: ' node1'", `hostname: " node1" has leading or trailing space`},
		{"keydate: \"a\\tb\"", "keydate: \"a\\tb\" contains a control character"},
		{"keyid: '" + strings.Repeat("x", 256) + "'", "keyid: is 256 bytes long, more than 255"},
		{"log: {level: trace}", `log.level: "trace" is not debug, info, warn or error`},
		{"log: {format: xml}", `log.format: "xml" is not text or json`},
		{"log: 5", "log: expected a mapping, got integer 5"},
		{"http: {timeout: 0s}", "http.timeout: must be > 0 and at most 1h, got 0s"},
		{"http: {timeout: 2h}", "http.timeout: must be > 0 and at most 1h, got 2h"},
		{"http: {timeout: 30}", `http.timeout: duration 30 has no unit (write e.g. "30s")`},
		{"http: {timeout: soon}", `http.timeout: invalid duration "soon"`},
		{"http: {key_hash: 'md5:00'}", `http.key_hash: invalid key hash "md5:00"`},
		{"relay_url: 'https://r'\nhttp: {key_hash: 'sha256//kGGR7iJmbBYCqkM5EAC8TuCpR3X2jE+9wbKHz1Kxh1w=', ca_file: /ca.pem}", "http.key_hash: set together with http.ca_file"},
		{"http: {ca_file: /ca.pem}", `relay_url: "http://127.0.0.1:3030" is plain http, but http.ca_file or http.key_hash is set`},
		{"edge: {relay: relay.example}", `edge.relay: "relay.example" is not HOST:PORT`},
		{"edge: {relay: 'relay.example:0'}", `edge.relay: "relay.example:0": port "0" is not a number between 1 and 65535`},
		{"edge: {relay: ':7443'}", `edge.relay: ":7443" has no host`},
		{"edge: {relay: 'bad_host!:7443'}", `is not an IP address or host name`},
		{"edge: {key_file: ''}", "edge.key_file: must not be empty"},
		{"edge: {token_file: ''}", "edge.token_file: must not be empty"},
		{"edge: {heartbeat_interval: 100ms}", "edge.heartbeat_interval: must be between 1s and 1h, got 100ms"},
		{"edge: {tools: {agent_run: {command: []}}}", "edge.tools.agent_run.command: must not be empty"},
		{"edge: {tools: {agent_run: {command: '/bin/run {classes}'}}}", "edge.tools.agent_run.command: expected a list such as [a, b]"},
		{"edge: {tools: {agent_run: {command: ['{classes}']}}}", "edge.tools.agent_run.command[0]: the program must not contain a placeholder"},
		{"edge: {tools: {agent_run: {command: [/bin/run, '{hostname}']}}}", `edge.tools.agent_run.command[1]: unknown placeholder "{hostname}"`},
		{"edge: {tools: {agent_run: {command: [/bin/run, '']}}}", "edge.tools.agent_run.command[1]: must not be empty"},
		{"edge: {tools: {shell: {enabled: yes please}}}", "edge.tools.shell.enabled: invalid boolean"},
		{"edge: {tools: {shell: {enabled: 1}}}", "edge.tools.shell.enabled: expected true or false, got integer 1"},
		{"edge: {labels: [site]}", `edge.labels[0]: "site" is not key=value`},
		{"edge: {labels: ['=x']}", "edge.labels[0]: \"=x\": the key must be 1 to 63 characters"},
		{"edge: {labels: ['a b=x']}", "the key may only contain"},
		{"edge: {labels: [a=1, a=2]}", `edge.labels[1]: duplicate label "a"`},
		{"edge: {labels: site=x}", "edge.labels: expected a list such as [a, b]"},
		{"edge: {allow_plaintext: maybe}", "edge.allow_plaintext: invalid boolean"},
		{"edge: {tools: {max_concurrent: 0}}", "edge.tools.max_concurrent: must be between 1 and 256, got 0"},
		{"edge: {tools: {max_concurrent: 1000}}", "edge.tools.max_concurrent: must be between 1 and 256, got 1000"},
		{"edge: [a]", "edge: expected a mapping, got a list"},
		{"node_id: a\nNODE_ID: b", `duplicate key "node_id"`},
		{"node_id: [", "parsing YAML"},
		{"---\n---\nnode_id: a", "more than one document"},
	} {
		_, err := LoadBytes([]byte(tc.yaml), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.yaml, err, tc.want)
		}
	}
}

func TestUnknownKeys(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"nodeid: node1", `unknown key "nodeid"`},
		{"http: {timout: 5s}", `unknown key "http.timout"`},
		{"edge: {tools: {ssh: {enabled: true}}}", `unknown key "edge.tools.ssh"`},
		{"edge: {tools: {shell: {enabled: true, allow: [ls]}}}", `unknown key "edge.tools.shell.allow"`},
		{"data_dir: /var/lib/keel", `unknown key "data_dir"`},
	} {
		_, err := LoadBytes([]byte(tc.yaml), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
	// Unknown KEEL_AGENT_* variables are ignored, as are keel-relay's KEEL_* ones.
	if _, err := LoadBytes(nil, envFrom(map[string]string{"KEEL_AGENT_NOPE": "x", "KEEL_HTTP_LISTEN": "nowhere"})); err != nil {
		t.Errorf("unknown environment variables: %v", err)
	}
}

func TestEnvOverride(t *testing.T) {
	env := map[string]string{
		"KEEL_AGENT_NODE_ID":                        "node2",
		"KEEL_AGENT_RELAY_URL":                      "https://relay.example",
		"KEEL_AGENT_HTTP_TIMEOUT":                   "5s",
		"KEEL_AGENT_LOG_LEVEL":                      "debug",
		"KEEL_AGENT_EDGE_RELAY":                     "[::1]:7443",
		"KEEL_AGENT_EDGE_HEARTBEAT_INTERVAL":        "1m",
		"KEEL_AGENT_EDGE_TOOLS_AGENT_RUN_COMMAND":   "/bin/run, -D ,{classes}",
		"KEEL_AGENT_EDGE_TOOLS_SHELL_ENABLED":       "true",
		"KEEL_AGENT_KEYID":                          "",
		"KEEL_AGENT_EDGE_TOOLS_AGENT_RUN_COMMAND_X": "ignored",
	}
	c, err := LoadBytes([]byte("node_id: node1\nkeyid: ABCD\nhttp: {timeout: 1m}"), envFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	want := contractDefault()
	want.NodeID, want.RelayURL, want.HTTP.Timeout, want.Log.Level = "node2", "https://relay.example", 5*time.Second, "debug"
	want.Edge.Relay, want.Edge.HeartbeatInterval = "[::1]:7443", time.Minute
	want.Edge.Tools = ToolsConfig{MaxConcurrent: 4, AgentRun: AgentRunConfig{Command: []string{"/bin/run", "-D", "{classes}"}}, Shell: ShellConfig{Enabled: true}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%+v\nwant\n%+v", c, want)
	}
	for name, want := range map[string]string{
		"KEEL_AGENT_HTTP_TIMEOUT":             "http.timeout: invalid duration \"fast\" (want e.g. 30s, 5m, 1h) (from KEEL_AGENT_HTTP_TIMEOUT)",
		"KEEL_AGENT_EDGE_TOOLS_SHELL_ENABLED": "edge.tools.shell.enabled: invalid boolean \"fast\" (want true or false) (from KEEL_AGENT_EDGE_TOOLS_SHELL_ENABLED)",
		"KEEL_AGENT_NODE_ID":                  "(from KEEL_AGENT_NODE_ID)",
		"KEEL_AGENT_RELAY_URL":                "relay_url: \"fast\" is not an absolute http:// or https:// URL (from KEEL_AGENT_RELAY_URL)",
	} {
		bad := "fast"
		if name == "KEEL_AGENT_NODE_ID" {
			bad = "a b"
		}
		_, err := LoadBytes(nil, envFrom(map[string]string{name: bad}))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=%q: got %v, want %q", name, bad, err, want)
		}
	}
}

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"node_id":                      "KEEL_AGENT_NODE_ID",
		"http.timeout":                 "KEEL_AGENT_HTTP_TIMEOUT",
		"edge.tools.agent_run.command": "KEEL_AGENT_EDGE_TOOLS_AGENT_RUN_COMMAND",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestDefaultPath(t *testing.T) {
	for _, tc := range []struct{ goos, programData, want string }{
		{"linux", "", "/etc/keel/agent.yaml"},
		{"freebsd", `D:\Data`, "/etc/keel/agent.yaml"},
		{"windows", `D:\Data`, `D:\Data\Keel\agent.yaml`},
		{"windows", `D:\Data\`, `D:\Data\Keel\agent.yaml`},
		{"windows", "", `C:\ProgramData\Keel\agent.yaml`},
	} {
		got := confload.DefaultPath(tc.goos, func(string) string { return tc.programData }, files.Name)
		if got != tc.want {
			t.Errorf("%s, ProgramData=%q: %q, want %q", tc.goos, tc.programData, got, tc.want)
		}
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	c, err := LoadBytes([]byte("node_id: n\nedge: {relay: 'r.example:1', heartbeat_interval: 90s, tools: {agent_run: {command: ['/opt/my tools/run', 'a, b']}}}"), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadBytes(out, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip changed the config:\n%s", out)
	}
}

// FuzzLoadBytes feeds arbitrary YAML and environment to LoadBytes: it must never panic,
// and whatever it accepts must validate and survive a YAML() round trip.
func FuzzLoadBytes(f *testing.F) {
	f.Add([]byte(defaultYAML), "")
	f.Add([]byte("node_id: node1\nrelay_url: https://r.example\nhttp: {timeout: 1m}"), "KEEL_AGENT_EDGE_RELAY=r.example:7443")
	f.Add([]byte("edge: {tools: {agent_run: {command: [/bin/x, '{classes}', '{', '}{']}}}"), "KEEL_AGENT_EDGE_TOOLS_AGENT_RUN_COMMAND= , ,")
	f.Add([]byte("http: [1]\nlog: ~"), "KEEL_AGENT_HTTP_TIMEOUT=0")
	f.Add([]byte("a: &a [*a, *a]\nb: *a"), "")
	f.Add([]byte("{? [a] : b}"), "")
	f.Add([]byte("hostname: \"\\x00\\u00e9\""), "KEEL_AGENT_KEYDATE=\t")
	f.Fuzz(func(t *testing.T, yamlText []byte, envText string) {
		if err := files.CheckRoundTrip(yamlText, envText); err != nil {
			t.Fatal(err)
		}
	})
}
