package config

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/confload"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// contractDefault is the documented built-in default, written out by hand.
func contractDefault() *Config {
	return &Config{
		NodeID:            "root",
		Role:              "root",
		Upstream:          "",
		DataDir:           "./keel-data",
		NodesFile:         "",
		NodesPollInterval: 5 * time.Second,
		ShutdownGrace:     25 * time.Second,
		Log:               LogConfig{Level: "info", Format: "text"},
		HTTP: HTTPConfig{
			Listen:               "127.0.0.1:3030",
			AllowedNetworks:      []string{"127.0.0.0/8", "::1/128"},
			PolicyServerNetworks: []string{},
			MaxBody:              256 * MiB,
			ReadHeaderTimeout:    10 * time.Second,
			IdleTimeout:          2 * time.Minute,
			BodyIdleTimeout:      30 * time.Second,
			MaxConnections:       1024,
			MaxConcurrentUploads: 64,
			MaxUploadsPerClient:  0,
			MinUploadRate:        512,
			UploadSlotWait:       time.Minute,
			UploadPreemptRate:    16 * KiB,
			RequestLog:           RequestLogErrors,
		},
		Admin:       AdminConfig{Listen: "127.0.0.1:3031", MetricsNetworks: []string{}},
		SharedFiles: SharedFilesConfig{CleanupInterval: time.Minute},
		Forward: ForwardConfig{
			MinBackoff:     time.Second,
			MaxBackoff:     5 * time.Minute,
			Concurrency:    4,
			AttemptTimeout: 2 * time.Minute,
			MaxJobs:        100000,
			SubRelayURL:    "https://{hostname}",
			AllowHTTP:      false,
			TLS:            ForwardTLSConfig{},
		},
		RemoteRun: RemoteRunConfig{
			Command:     []string{"/opt/rudder/bin/rudder", "remote", "run", "-D", "{classes}", "--", "{hostname}"},
			Concurrency: 32,
			Timeout:     5 * time.Minute,
			MaxCalls:    8,
			SubRelayURL: "https://{hostname}",
		},
		Storage: StorageConfig{
			MemTableSize:     8 * MiB,
			NumMemtables:     2,
			BlockCacheSize:   8 * MiB,
			IndexCacheSize:   4 * MiB,
			ValueLogFileSize: 64 * MiB,
			ValueThreshold:   512,
			NumCompactors:    2,
			ChunkSize:        256 * KiB,
			SyncWrites:       true,
			MinFreeSpace:     Auto,
		},
		Edge: EdgeConfig{
			Enabled:              true,
			Listen:               "127.0.0.1:50056",
			Role:                 "relay_coordinator",
			HeartbeatInterval:    30 * time.Second,
			StaleThreshold:       90 * time.Second,
			TokenTTL:             time.Hour,
			OverlapWindow:        time.Minute,
			AttestPerMinute:      5,
			MaxPendingChallenges: 1024,
			ChallengesPerSource:  8,
			ChallengesPerNetwork: 32,
			ReservedChallenges:   256,
			TrustedIssuers:       []TrustedIssuer{},
			HelloTimeout:         10 * time.Second,
			StreamQueue:          64,
			FlushInterval:        30 * time.Second,
			DrainGrace:           10 * time.Second,
			MaxStreams:           20000,
			Reflection:           SwitchAuto,
		},
		Memory: MemoryConfig{Limit: Auto},
		AgentUploads: AgentUploadsConfig{
			HTPasswdInitial: "/opt/rudder/etc/htpasswd-webdav-initial",
			HTPasswd:        "/opt/rudder/etc/htpasswd-webdav",
			Retention:       168 * time.Hour,
			MaxWaiting:      100000,
		},
		UpstreamAuth: UpstreamAuthConfig{User: "rudder"},
		SharedFolder: SharedFolderConfig{Path: "/var/rudder/configuration-repository/shared-files"},
		Policies:     PoliciesConfig{Path: "/var/rudder/share", CommonPath: "/var/rudder/share/common"},
		TLS:          TLSConfig{NodeCerts: "/var/rudder/lib/ssl/nodescerts.pem"},
	}
}

// customEnv sets every key to a non-default value; customConfig is the result.
func customEnv() map[string]string {
	return map[string]string{
		"KEEL_NODE_ID":                             "relay-1.example_2",
		"KEEL_ROLE":                                "relay",
		"KEEL_UPSTREAM":                            "https://server.example:8443/rudder",
		"KEEL_DATA_DIR":                            "/var/lib/keel relay",
		"KEEL_NODES_FILE":                          "/var/rudder/lib/relay/nodeslist.json",
		"KEEL_NODES_POLL_INTERVAL":                 "0",
		"KEEL_SHUTDOWN_GRACE":                      "1m30s",
		"KEEL_LOG_LEVEL":                           "debug",
		"KEEL_LOG_FORMAT":                          "json",
		"KEEL_HTTP_LISTEN":                         "[::]:443",
		"KEEL_HTTP_ALLOWED_NETWORKS":               "10.0.0.0/8, 192.168.1.7,,fd00::/8",
		"KEEL_HTTP_POLICY_SERVER_NETWORKS":         "192.0.2.10",
		"KEEL_HTTP_MAX_BODY":                       "1 GiB",
		"KEEL_HTTP_TLS_CERT":                       "/etc/keel/cert.pem",
		"KEEL_HTTP_TLS_KEY":                        "/etc/keel/key.pem",
		"KEEL_HTTP_LOCAL_LISTEN":                   "127.0.0.1:3030",
		"KEEL_HTTP_READ_HEADER_TIMEOUT":            "5s",
		"KEEL_HTTP_IDLE_TIMEOUT":                   "1h",
		"KEEL_HTTP_BODY_IDLE_TIMEOUT":              "45s",
		"KEEL_HTTP_MAX_CONNECTIONS":                "100",
		"KEEL_HTTP_MAX_CONCURRENT_UPLOADS":         "8",
		"KEEL_HTTP_MIN_UPLOAD_RATE":                "4KiB",
		"KEEL_HTTP_UPLOAD_SLOT_WAIT":               "20s",
		"KEEL_HTTP_MAX_UPLOADS_PER_CLIENT":         "3",
		"KEEL_HTTP_UPLOAD_PREEMPT_RATE":            "0",
		"KEEL_HTTP_REQUEST_LOG":                    "all",
		"KEEL_ADMIN_LISTEN":                        "",
		"KEEL_ADMIN_TOKEN_FILE":                    "/run/keel/admin.token",
		"KEEL_ADMIN_METRICS_NETWORKS":              "192.0.2.0/24,2001:db8::9",
		"KEEL_SHARED_FILES_CLEANUP_INTERVAL":       "30s",
		"KEEL_FORWARD_MIN_BACKOFF":                 "500ms",
		"KEEL_FORWARD_MAX_BACKOFF":                 "1h",
		"KEEL_FORWARD_CONCURRENCY":                 "16",
		"KEEL_FORWARD_ATTEMPT_TIMEOUT":             "30s",
		"KEEL_FORWARD_MAX_JOBS":                    "5000",
		"KEEL_FORWARD_SUB_RELAY_URL":               "http://{node_id}.relays.example:3030",
		"KEEL_FORWARD_ALLOW_HTTP":                  "true",
		"KEEL_FORWARD_TLS_CA_FILE":                 "/etc/keel/ca.pem",
		"KEEL_FORWARD_TLS_KEY_HASH":                "sha256:906191ee22666c1602aa43391000bc4ee0a94775f68f4c19edc83bfb1b28755c",
		"KEEL_FORWARD_TLS_INSECURE_SKIP_VERIFY":    "1",
		"KEEL_REMOTE_RUN_COMMAND":                  " /usr/local/bin/run agent ,--host={hostname}:5309,, -D,{classes} ,--,{node_id}",
		"KEEL_REMOTE_RUN_CONCURRENCY":              "1024",
		"KEEL_REMOTE_RUN_TIMEOUT":                  "24h",
		"KEEL_REMOTE_RUN_MAX_CALLS":                "1",
		"KEEL_REMOTE_RUN_SUB_RELAY_URL":            "http://{hostname}:3030/{node_id}",
		"KEEL_STORAGE_MEM_TABLE_SIZE":              "16MiB",
		"KEEL_STORAGE_NUM_MEMTABLES":               "3",
		"KEEL_STORAGE_BLOCK_CACHE_SIZE":            "1048576",
		"KEEL_STORAGE_INDEX_CACHE_SIZE":            "10MB",
		"KEEL_STORAGE_VALUE_LOG_FILE_SIZE":         "128MiB",
		"KEEL_STORAGE_VALUE_THRESHOLD":             "1000",
		"KEEL_STORAGE_NUM_COMPACTORS":              "4",
		"KEEL_STORAGE_CHUNK_SIZE":                  "1MiB",
		"KEEL_STORAGE_SYNC_WRITES":                 "false",
		"KEEL_STORAGE_MIN_FREE_SPACE":              "2GiB",
		"KEEL_EDGE_ENABLED":                        "false",
		"KEEL_EDGE_LISTEN":                         "0.0.0.0:443",
		"KEEL_EDGE_TLS_CERT_FILE":                  "/etc/keel/edge.pem",
		"KEEL_EDGE_TLS_KEY_FILE":                   "/etc/keel/edge.key",
		"KEEL_EDGE_ALLOW_PLAINTEXT":                "true",
		"KEEL_EDGE_ROLE":                           "worker",
		"KEEL_EDGE_HEARTBEAT_INTERVAL":             "20s",
		"KEEL_EDGE_STALE_THRESHOLD":                "1m",
		"KEEL_EDGE_TOKEN_TTL":                      "2h",
		"KEEL_EDGE_OVERLAP_WINDOW":                 "5m",
		"KEEL_EDGE_ATTEST_PER_MINUTE":              "10",
		"KEEL_EDGE_MAX_PENDING_CHALLENGES":         "16",
		"KEEL_EDGE_CHALLENGES_PER_SOURCE":          "2",
		"KEEL_EDGE_CHALLENGES_PER_NETWORK":         "4",
		"KEEL_EDGE_RESERVED_CHALLENGES":            "8",
		"KEEL_EDGE_TRUSTED_ISSUERS":                "https://issuer.example = /etc/keel/issuer.pem,aegis=/k.pem",
		"KEEL_EDGE_HELLO_TIMEOUT":                  "3s",
		"KEEL_EDGE_STREAM_QUEUE":                   "8",
		"KEEL_EDGE_FLUSH_INTERVAL":                 "1m",
		"KEEL_EDGE_DRAIN_GRACE":                    "2s",
		"KEEL_EDGE_MAX_STREAMS":                    "100",
		"KEEL_EDGE_REFLECTION":                     "false",
		"KEEL_MEMORY_LIMIT":                        "96MiB",
		"KEEL_AGENT_UPLOADS_HTPASSWD_INITIAL":      "/etc/keel/htpasswd-initial",
		"KEEL_AGENT_UPLOADS_HTPASSWD":              "/etc/keel/htpasswd",
		"KEEL_AGENT_UPLOADS_RETENTION":             "48h",
		"KEEL_AGENT_UPLOADS_MAX_WAITING":           "500",
		"KEEL_AGENT_UPLOADS_ROOT_DIR":              "", // role root only; the custom role is relay
		"KEEL_UPSTREAM_AUTH_USER":                  "relay-1",
		"KEEL_UPSTREAM_AUTH_PASSWORD_FILE":         "/etc/keel/upstream-password",
		"KEEL_UPSTREAM_AUTH_DEFAULT_PASSWORD_FILE": "/etc/keel/upstream-initial-password",
		"KEEL_SHARED_FOLDER_PATH":                  "/srv/shared folder",
		"KEEL_POLICIES_PATH":                       "/srv/share",
		"KEEL_POLICIES_COMMON_PATH":                "/srv/share/common",
		"KEEL_TLS_NODE_CERTS":                      "/etc/keel/nodescerts.pem",
	}
}

func customConfig() *Config {
	return &Config{
		NodeID:            "relay-1.example_2",
		Role:              "relay",
		Upstream:          "https://server.example:8443/rudder",
		DataDir:           "/var/lib/keel relay",
		NodesFile:         "/var/rudder/lib/relay/nodeslist.json",
		NodesPollInterval: 0,
		ShutdownGrace:     90 * time.Second,
		Log:               LogConfig{Level: "debug", Format: "json"},
		HTTP: HTTPConfig{
			Listen:               "[::]:443",
			AllowedNetworks:      []string{"10.0.0.0/8", "192.168.1.7", "fd00::/8"},
			PolicyServerNetworks: []string{"192.0.2.10"},
			MaxBody:              GiB,
			TLSCert:              "/etc/keel/cert.pem",
			TLSKey:               "/etc/keel/key.pem",
			LocalListen:          "127.0.0.1:3030",
			ReadHeaderTimeout:    5 * time.Second,
			IdleTimeout:          time.Hour,
			BodyIdleTimeout:      45 * time.Second,
			MaxConnections:       100,
			MaxConcurrentUploads: 8,
			MaxUploadsPerClient:  3,
			MinUploadRate:        4 * KiB,
			UploadSlotWait:       20 * time.Second,
			UploadPreemptRate:    0,
			RequestLog:           RequestLogAll,
		},
		Admin:       AdminConfig{Listen: "", TokenFile: "/run/keel/admin.token", MetricsNetworks: []string{"192.0.2.0/24", "2001:db8::9"}},
		SharedFiles: SharedFilesConfig{CleanupInterval: 30 * time.Second},
		Forward: ForwardConfig{
			MinBackoff:     500 * time.Millisecond,
			MaxBackoff:     time.Hour,
			Concurrency:    16,
			AttemptTimeout: 30 * time.Second,
			MaxJobs:        5000,
			SubRelayURL:    "http://{node_id}.relays.example:3030",
			AllowHTTP:      true,
			TLS: ForwardTLSConfig{
				CAFile:             "/etc/keel/ca.pem",
				KeyHash:            "sha256:906191ee22666c1602aa43391000bc4ee0a94775f68f4c19edc83bfb1b28755c",
				InsecureSkipVerify: true,
			},
		},
		RemoteRun: RemoteRunConfig{
			Command:     []string{"/usr/local/bin/run agent", "--host={hostname}:5309", "-D", "{classes}", "--", "{node_id}"},
			Concurrency: 1024,
			Timeout:     24 * time.Hour,
			MaxCalls:    1,
			SubRelayURL: "http://{hostname}:3030/{node_id}",
		},
		Storage: StorageConfig{
			MemTableSize:     16 * MiB,
			NumMemtables:     3,
			BlockCacheSize:   MiB,
			IndexCacheSize:   10_000_000,
			ValueLogFileSize: 128 * MiB,
			ValueThreshold:   1000,
			NumCompactors:    4,
			ChunkSize:        MiB,
			SyncWrites:       false,
			MinFreeSpace:     AutoByteSize(2 * GiB),
		},
		Edge: EdgeConfig{
			Enabled:              false,
			Listen:               "0.0.0.0:443",
			TLS:                  EdgeTLSConfig{CertFile: "/etc/keel/edge.pem", KeyFile: "/etc/keel/edge.key"},
			AllowPlaintext:       true,
			Role:                 "worker",
			HeartbeatInterval:    20 * time.Second,
			StaleThreshold:       time.Minute,
			TokenTTL:             2 * time.Hour,
			OverlapWindow:        5 * time.Minute,
			AttestPerMinute:      10,
			MaxPendingChallenges: 16,
			ChallengesPerSource:  2,
			ChallengesPerNetwork: 4,
			ReservedChallenges:   8,
			TrustedIssuers: []TrustedIssuer{
				{Issuer: "https://issuer.example", PublicKeyFile: "/etc/keel/issuer.pem"},
				{Issuer: "aegis", PublicKeyFile: "/k.pem"},
			},
			HelloTimeout:  3 * time.Second,
			StreamQueue:   8,
			FlushInterval: time.Minute,
			DrainGrace:    2 * time.Second,
			MaxStreams:    100,
			Reflection:    SwitchOff,
		},
		Memory: MemoryConfig{Limit: AutoByteSize(96 * MiB)},
		AgentUploads: AgentUploadsConfig{
			HTPasswdInitial: "/etc/keel/htpasswd-initial",
			HTPasswd:        "/etc/keel/htpasswd",
			Retention:       48 * time.Hour,
			MaxWaiting:      500,
		},
		UpstreamAuth: UpstreamAuthConfig{User: "relay-1", PasswordFile: "/etc/keel/upstream-password",
			DefaultPasswordFile: "/etc/keel/upstream-initial-password"},
		SharedFolder: SharedFolderConfig{Path: "/srv/shared folder"},
		Policies:     PoliciesConfig{Path: "/srv/share", CommonPath: "/srv/share/common"},
		TLS:          TLSConfig{NodeCerts: "/etc/keel/nodescerts.pem"},
	}
}

func envFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func mustLoad(t *testing.T, yamlText string, env map[string]string) *Config {
	t.Helper()
	c, err := LoadBytes([]byte(yamlText), envFrom(env))
	if err != nil {
		t.Fatalf("LoadBytes(%q): %v", yamlText, err)
	}
	return c
}

func diff(t *testing.T, got, want *Config) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := got.YAML()
		w, _ := want.YAML()
		t.Errorf("config differs\ngot:\n%s\nwant:\n%s", g, w)
	}
}

func TestDefaultIsContract(t *testing.T) {
	c := Default()
	diff(t, c, contractDefault())
	if err := c.Validate(); err != nil {
		t.Fatalf("default does not validate: %v", err)
	}
	// Loading nothing at all gives the same.
	diff(t, mustLoad(t, "", nil), contractDefault())
	diff(t, mustLoad(t, "# only a comment\n", nil), contractDefault())
}

func TestDefaultGolden(t *testing.T) {
	got, err := Default().YAML()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "default.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Default().YAML() differs from %s (run go test -update if intended)\ngot:\n%s", golden, got)
	}
}

func TestShippedInitConfig(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "init", "relay.yaml"), true)
	if err != nil {
		t.Fatal(err)
	}
	want := contractDefault()
	want.DataDir = "/var/lib/keel-relay"
	want.Admin.TokenFile = "/var/lib/keel-relay/admin.token"
	diff(t, c, want)
}

func TestFileOverrides(t *testing.T) {
	c := mustLoad(t, `
node_id: relay1
role: relay
upstream: https://server.example/
http:
  listen: 0.0.0.0:3030
  allowed_networks: [10.0.0.0/8]
  max_body: 1GiB
forward:
  concurrency: 8
  tls:
    key_hash: sha256//kGGR7iJmbBYCqkM5EAC8TuCpR3X2jE+9wbKHz1Kxh1w=
Storage:
  Sync_Writes: false
`, nil)
	want := contractDefault()
	want.NodeID = "relay1"
	want.Role = "relay"
	want.Upstream = "https://server.example/"
	want.HTTP.Listen = "0.0.0.0:3030"
	want.HTTP.AllowedNetworks = []string{"10.0.0.0/8"}
	want.HTTP.MaxBody = GiB
	want.Forward.Concurrency = 8
	want.Forward.TLS.KeyHash = "sha256//kGGR7iJmbBYCqkM5EAC8TuCpR3X2jE+9wbKHz1Kxh1w="
	want.Storage.SyncWrites = false
	diff(t, c, want)
}

func TestNullValues(t *testing.T) {
	// An empty section keeps its defaults; an empty value is the zero value.
	c := mustLoad(t, "http:\nforward:\n  tls:\nnodes_file:\n", nil)
	diff(t, c, contractDefault())
	c = mustLoad(t, "http:\n  policy_server_networks:\n", nil)
	diff(t, c, contractDefault())
}

func TestEnvReachesEveryKey(t *testing.T) {
	keys := schema().Keys(reflect.TypeFor[Config]())
	seen := map[string]string{}
	env := customEnv()
	for _, key := range keys {
		name := EnvName(key)
		if other, dup := seen[name]; dup {
			t.Errorf("keys %q and %q share the variable %s", other, key, name)
		}
		seen[name] = key
		if _, ok := env[name]; !ok {
			t.Errorf("key %q: %s is not exercised by customEnv", key, name)
		}
	}
	if len(env) != len(keys) {
		t.Errorf("customEnv has %d variables, the config %d keys", len(env), len(keys))
	}
	diff(t, mustLoad(t, "", env), customConfig())
}

func TestEnvBeatsFile(t *testing.T) {
	c := mustLoad(t, `
http: {listen: "0.0.0.0:1", allowed_networks: [10.0.0.0/8]}
forward: {tls: {ca_file: /file/ca.pem}, concurrency: 2}
`, map[string]string{
		"KEEL_HTTP_LISTEN":           "127.0.0.1:9999",
		"KEEL_HTTP_ALLOWED_NETWORKS": "192.0.2.0/24",
		"KEEL_FORWARD_TLS_CA_FILE":   "/env/ca.pem",
	})
	want := contractDefault()
	want.HTTP.Listen = "127.0.0.1:9999"
	want.HTTP.AllowedNetworks = []string{"192.0.2.0/24"}
	want.Forward.TLS.CAFile = "/env/ca.pem"
	want.Forward.Concurrency = 2
	diff(t, c, want)
}

func TestUnknownEnvIgnored(t *testing.T) {
	c := mustLoad(t, "", map[string]string{
		"KEEL_AGENT_NODE_ID":  "node1",
		"KEEL_HTTP_LISEN":     "x",
		"KEEL_HTTP":           "x",
		"KEEL_FORWARD_TLS":    "x",
		"KEEL_":               "x",
		"http_listen":         "x",
		"KEEL_http_listen":    "1.2.3.4:5", // variables are upper case
		"KEEL_STORAGE_BOGUS":  "1",
		"KEEL_CONFIG":         "/tmp/x.yaml",
		"KEEL_LOG_LEVEL_FOO":  "x",
		"KEEL_SHARED_FILES_X": "x",
	})
	diff(t, c, contractDefault())
}

func TestEmptyEnvListClears(t *testing.T) {
	c := mustLoad(t, "", map[string]string{"KEEL_HTTP_ALLOWED_NETWORKS": ""})
	if got := c.HTTP.AllowedNetworks; got == nil || len(got) != 0 {
		t.Errorf("allowed_networks = %#v, want empty", got)
	}
}

// TestRefused lists inputs that fail before validation: YAML shape, unknown keys,
// bad types; each with its exact message.
func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        map[string]string
		want       string
	}{
		{"unknown top key", "nodeid: x", nil, `unknown key "nodeid"`},
		{"unknown nested key", "http:\n  lisen: 1.2.3.4:5", nil, `unknown key "http.lisen"`},
		{"unknown deep key", "forward: {tls: {cafile: x}}", nil, `unknown key "forward.tls.cafile"`},
		{"unknown key keeps its case", "HTTP: {Lisen: x}", nil, `unknown key "http.Lisen"`},
		{"unknown keys all named", "a: 1\nb: 2", nil, "unknown key \"a\"\nunknown key \"b\""},
		{"dotted key", "http.listen: 1.2.3.4:5", nil, `unknown key "http.listen"`},
		{"numeric key", "1: x", nil, `unknown key "1"`},
		{"case duplicate", "role: root\nRole: relay", nil, `duplicate key "role" (keys are case-insensitive)`},
		{"list for string", "http: {listen: [1,2]}", nil, `http.listen: expected a string, got a list`},
		{"mapping for string", "http: {listen: {a: 1}}", nil, `http.listen: expected a string, got a mapping`},
		{"empty mapping for string", "http: {listen: {}}", nil, `http.listen: expected a string, got a mapping`},
		{"int for string", "node_id: 0123", nil, `node_id: expected a string, got integer 83`}, // YAML 1.1 octal: exactly why numbers are refused,
		{"bool for string", "upstream: true", nil, `upstream: expected a string, got boolean true`},
		{"bad duration", "shutdown_grace: soon", nil, `shutdown_grace: invalid duration "soon" (want e.g. 30s, 5m, 1h)`},
		{"duration without unit", "shutdown_grace: 25", nil, `shutdown_grace: duration 25 has no unit (write e.g. "25s")`},
		{"list for duration", "forward: {min_backoff: [1s]}", nil, `forward.min_backoff: expected a duration such as "30s", got a list`},
		{"scalar for section", "http: 5", nil, `http: expected a mapping, got integer 5`},
		{"list for section", "forward: {tls: [a]}", nil, `forward.tls: expected a mapping, got a list`},
		{"string for int", "forward: {concurrency: many}", nil, `forward.concurrency: invalid integer "many"`},
		{"float for int", "forward: {concurrency: 1.5}", nil, `forward.concurrency: expected an integer, got number 1.5`},
		{"huge int", "forward: {max_jobs: 9223372036854775808}", nil, `forward.max_jobs: integer 9223372036854775808 is out of range`},
		{"bad bool", "storage: {sync_writes: maybe}", nil, `storage.sync_writes: invalid boolean "maybe" (want true or false)`},
		{"int for bool", "forward: {allow_http: 1}", nil, `forward.allow_http: expected true or false, got integer 1`},
		{"bad size", "http: {max_body: lots}", nil, `http.max_body: invalid size "lots": want a whole number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)`},
		{"negative size", "http: {max_body: -1}", nil, `http.max_body: invalid size -1: must not be negative`},
		{"bad auto size", "storage: {min_free_space: lots}", nil, `storage.min_free_space: invalid size "lots": want a whole number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), or auto`},
		{"negative auto size", "storage: {min_free_space: -1}", nil, `storage.min_free_space: invalid size -1: must not be negative, or auto`},
		{"list for auto size", "storage: {min_free_space: [auto]}", nil, `storage.min_free_space: expected "auto" or a size such as "256MiB", got a list`},
		{"float size", "http: {max_body: 1.5}", nil, `http.max_body: expected a size such as "256MiB", got number 1.5`},
		{"scalar for list", "http: {allowed_networks: 5}", nil, `http.allowed_networks: expected a list, got integer 5`},
		{"int in list", "http: {allowed_networks: [10.0.0.0/8, 1]}", nil, `http.allowed_networks[1]: expected a string, got integer 1`},
		{"string for command", "remote_run: {command: '/opt/rudder/bin/rudder remote run'}", nil, `remote_run.command: expected a list such as [a, b], got string "/opt/rudder/bin/rudder remote run"`},
		{"string for network list", "http: {allowed_networks: 10.0.0.0/8}", nil, `http.allowed_networks: expected a list such as [a, b], got string "10.0.0.0/8"`},
		{"mapping for command", "remote_run: {command: {a: b}}", nil, `remote_run.command: expected a list, got a mapping`},
		{"list in command", "remote_run: {command: [rudder, [a]]}", nil, `remote_run.command[1]: expected a string, got a list`},
		{"int in command", "remote_run: {command: [rudder, 5309]}", nil, `remote_run.command[1]: expected a string, got integer 5309`},
		{"bool in command", "remote_run: {command: [rudder, true]}", nil, `remote_run.command[1]: expected a string, got boolean true`},
		{"scalar for remote_run", "remote_run: rudder", nil, `remote_run: expected a mapping, got string "rudder"`},
		{"unknown remote_run key", "remote_run: {cmd: [x]}", nil, `unknown key "remote_run.cmd"`},
		{"env bad command", "", map[string]string{"KEEL_REMOTE_RUN_COMMAND": "/bin/run,{host}"}, `remote_run.command[1]: unknown placeholder "{host}" (use {hostname}, {node_id} or {classes}) (from KEEL_REMOTE_RUN_COMMAND)`},
		{"env empty command", "", map[string]string{"KEEL_REMOTE_RUN_COMMAND": " , "}, `remote_run.command: must have at least one element (the program to run) (from KEEL_REMOTE_RUN_COMMAND)`},
		{"env bad timeout", "", map[string]string{"KEEL_REMOTE_RUN_TIMEOUT": "300"}, `remote_run.timeout: invalid duration "300" (want e.g. 30s, 5m, 1h) (from KEEL_REMOTE_RUN_TIMEOUT)`},
		{"env long timeout", "", map[string]string{"KEEL_REMOTE_RUN_TIMEOUT": "25h"}, `remote_run.timeout: must be > 0 and <= 24h, got 25h (from KEEL_REMOTE_RUN_TIMEOUT)`},
		{"env bad max_calls", "", map[string]string{"KEEL_REMOTE_RUN_MAX_CALLS": "0"}, `remote_run.max_calls: must be between 1 and 1024, got 0 (from KEEL_REMOTE_RUN_MAX_CALLS)`},
		{"env http sub relay", "", map[string]string{"KEEL_REMOTE_RUN_SUB_RELAY_URL": "http://{hostname}"}, `remote_run.sub_relay_url: "http://{hostname}" is plain http (set forward.allow_http to allow it) (from KEEL_REMOTE_RUN_SUB_RELAY_URL)`},
		{"not a mapping", "- a\n- b", nil, "parsing YAML: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into map[string]interface {}"},
		{"two documents", "role: root\n---\nrole: relay\n", nil, `parsing YAML: more than one document (a second "---")`},
		{"broken YAML", "http: [", nil, "parsing YAML: yaml: line 1: did not find expected node content"},
		{"env bad int", "", map[string]string{"KEEL_FORWARD_CONCURRENCY": "abc"}, `forward.concurrency: invalid integer "abc" (from KEEL_FORWARD_CONCURRENCY)`},
		{"env bad bool", "", map[string]string{"KEEL_FORWARD_ALLOW_HTTP": "yes"}, `forward.allow_http: invalid boolean "yes" (want true or false) (from KEEL_FORWARD_ALLOW_HTTP)`},
		{"env bad duration", "", map[string]string{"KEEL_SHUTDOWN_GRACE": "25"}, `shutdown_grace: invalid duration "25" (want e.g. 30s, 5m, 1h) (from KEEL_SHUTDOWN_GRACE)`},
		{"env bad size", "", map[string]string{"KEEL_STORAGE_CHUNK_SIZE": "1 MiBs"}, `storage.chunk_size: invalid size "1 MiBs": unknown unit "MiBs" (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB) (from KEEL_STORAGE_CHUNK_SIZE)`},
		{"env bad value", "", map[string]string{"KEEL_HTTP_LISTEN": "abc"}, `http.listen: "abc" is not host:port (from KEEL_HTTP_LISTEN)`},
		{"env bad list item", "", map[string]string{"KEEL_HTTP_ALLOWED_NETWORKS": "10.0.0.0/8,nope"}, `http.allowed_networks[1]: access list entry "nope": not an IP address: ParseAddr("nope"): unable to parse IP (from KEEL_HTTP_ALLOWED_NETWORKS)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadBytes([]byte(tc.yaml), envFrom(tc.env))
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Setenv("KEEL_LOG_LEVEL", "warn")
	dir := t.TempDir()
	file := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(file, []byte("node_id: fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yaml")

	c, err := Load(file, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeID != "fromfile" || c.Log.Level != "warn" {
		t.Errorf("Load(file): node_id %q log.level %q, want fromfile and warn (env)", c.NodeID, c.Log.Level)
	}

	// The default path, absent: the embedded default (plus env).
	c, err = Load(missing, false)
	if err != nil {
		t.Fatal(err)
	}
	want := contractDefault()
	want.Log.Level = "warn"
	diff(t, c, want)

	for _, tc := range []struct {
		name     string
		path     string
		explicit bool
		content  string
		want     string
	}{
		{"explicit missing", missing, true, "", "config: open " + missing + ": no such file or directory"},
		{"directory", dir, false, "", "config: read " + dir + ": is a directory"},
		{"unknown key", file, true, "http:\n  lisen: 1.2.3.4:5\n", "config " + file + `: unknown key "http.lisen"`},
		{"invalid value", file, false, "http:\n  listen: abc\n", "config " + file + `: http.listen: "abc" is not host:port`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.content != "" {
				if err := os.WriteFile(tc.path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(tc.path, tc.explicit)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Load(%q, %v) error:\n%v\nwant:\n%s", tc.path, tc.explicit, err, tc.want)
			}
		})
	}
}

func TestLoadEnvErrorWithoutFile(t *testing.T) {
	t.Setenv("KEEL_FORWARD_CONCURRENCY", "0")
	_, err := Load(filepath.Join(t.TempDir(), "none.yaml"), false)
	want := "config: forward.concurrency: must be between 1 and 256, got 0 (from KEEL_FORWARD_CONCURRENCY)"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

func TestDefaultPath(t *testing.T) {
	for _, tc := range []struct {
		goos, programData, want string
	}{
		{"linux", "", "/etc/keel/relay.yaml"},
		{"freebsd", `D:\Data`, "/etc/keel/relay.yaml"},
		{"windows", `D:\Data`, `D:\Data\Keel\relay.yaml`},
		{"windows", `D:\Data\`, `D:\Data\Keel\relay.yaml`},
		{"windows", "", `C:\ProgramData\Keel\relay.yaml`},
	} {
		got := confload.DefaultPath(tc.goos, func(k string) string {
			if k == "ProgramData" {
				return tc.programData
			}
			return ""
		}, files.Name)
		if got != tc.want {
			t.Errorf("DefaultPath(%s, ProgramData=%q) = %q, want %q", tc.goos, tc.programData, got, tc.want)
		}
	}
	if DefaultPath() == "" {
		t.Error("DefaultPath() is empty")
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	for name, c := range map[string]*Config{
		"default": Default(),
		"custom":  customConfig(),
	} {
		t.Run(name, func(t *testing.T) {
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			out, err := c.YAML()
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "relay.yaml")
			if err := os.WriteFile(file, out, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, key := range schema().Keys(reflect.TypeFor[Config]()) {
				if _, ok := os.LookupEnv(EnvName(key)); ok {
					t.Skipf("%s is set in the environment", EnvName(key))
				}
			}
			got, err := Load(file, true)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			diff(t, got, c)
		})
	}
}

func TestDefaultFileCommentsEveryKey(t *testing.T) {
	// Map each dotted key to its line, following the two-space indentation, so
	// that keys with the same name in different sections are told apart.
	lines := map[string]string{}
	var path []string
	for l := range strings.SplitSeq(defaultYAML, "\n") {
		text := strings.TrimLeft(l, " ")
		name, _, ok := strings.Cut(text, ":")
		if text == "" || strings.HasPrefix(text, "#") || !ok {
			continue
		}
		depth := (len(l) - len(text)) / 2
		if depth > len(path) {
			t.Fatalf("default.yaml: unexpected indentation: %s", l)
		}
		path = append(path[:depth], name)
		lines[strings.Join(path, ".")] = l
	}
	for _, key := range schema().Keys(reflect.TypeFor[Config]()) {
		line, ok := lines[key]
		switch {
		case !ok:
			t.Errorf("default.yaml: key %q is missing", key)
		case !strings.Contains(line, "#"):
			t.Errorf("default.yaml: key %q has no comment: %s", key, line)
		}
	}
}

// TestYAMLRoundTripOddStrings: strings YAML needs to quote or escape survive YAML().
func TestYAMLRoundTripOddStrings(t *testing.T) {
	for _, s := range []string{"\xff", "\x00", "a\r\nb", " lead", "#", "null", "~", "- x", "key: v", "\t", "\u2028", "\ufeffx", "'", "\"", "a\x85b", "trail "} {
		c, err := LoadBytes(nil, envFrom(map[string]string{"KEEL_DATA_DIR": s, "KEEL_FORWARD_TLS_CA_FILE": s}))
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.YAML()
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		back, err := LoadBytes(out, nil)
		if err != nil {
			t.Errorf("%q: %v\n%s", s, err, out)
			continue
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("%q: got %q", s, back.DataDir)
		}
	}
}

// TestYAMLRoundTripCommand: remote_run.command arguments that YAML needs to quote
// or escape survive YAML(), alone and all together.
func TestYAMLRoundTripCommand(t *testing.T) {
	args := []string{"with space", " lead", "trail ", "a, b", ",", "{hostname}", "--host={hostname}:5309",
		"{", "}", "a}b{c", "[a]", "{hostname", "'", "\"", `say "hi" 'there'`, `\`, `C:\Program Files\x`,
		"#", "a #b", "key: v", "- x", "-D", "--", "-", "null", "~", "true", "no", "1e3", "0o17", "0x1F", "&a", "*a",
		"!x", "%x", "@x", "`x", "?", "|", ">", "\t", "a\r\nb", "\u2028", "\ufeffx", "a\x85b", "\xff", "é"}
	cases := [][]string{append([]string{`/opt/my tools/run "agent"`}, args...)}
	for _, a := range args {
		cases = append(cases, []string{"/bin/run", a})
		if !strings.Contains(a, "{hostname}") { // a placeholder is not allowed in the program
			cases = append(cases, []string{a})
		}
	}
	for _, tc := range cases {
		c := Default()
		c.RemoteRun.Command = tc
		if err := c.Validate(); err != nil {
			t.Fatalf("%q: %v", tc, err)
		}
		out, err := c.YAML()
		if err != nil {
			t.Fatalf("%q: %v", tc, err)
		}
		back, err := LoadBytes(out, nil)
		if err != nil {
			t.Errorf("%q: %v\n%s", tc, err, out)
			continue
		}
		if !reflect.DeepEqual(back.RemoteRun.Command, tc) {
			t.Errorf("%q: read back as %q\n%s", tc, back.RemoteRun.Command, out)
		}
	}
}
