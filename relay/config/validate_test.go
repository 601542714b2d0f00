package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestValidateRefuses(t *testing.T) {
	long := strings.Repeat("a", 256)
	const idRule = `must be 1 to 255 characters among A-Z a-z 0-9 _ . - and not "." or ".."`
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"empty node_id", `node_id: ""`, `node_id: invalid node id "": ` + idRule},
		{"node_id charset", `node_id: "a/b"`, `node_id: invalid node id "a/b": ` + idRule},
		{"node_id dot", `node_id: "."`, `node_id: invalid node id ".": ` + idRule},
		{"node_id dotdot", `node_id: ".."`, `node_id: invalid node id "..": ` + idRule},
		{"node_id non-ASCII", `node_id: "né"`, `node_id: invalid node id "né": ` + idRule},
		{"node_id too long", "node_id: " + long, `node_id: invalid node id "` + long[:32] + `"... (256 bytes): ` + idRule},
		{"role", "role: leaf", `role: "leaf" is not root or relay`},
		{"role case", "role: Root", `role: "Root" is not root or relay`},
		{"relay without upstream", "role: relay", `upstream: required when role is relay`},
		{"upstream relative", "role: relay\nupstream: server.example", `upstream: "server.example" is not an absolute http:// or https:// URL`},
		{"upstream scheme", "role: relay\nupstream: ftp://server.example", `upstream: "ftp://server.example" is not an absolute http:// or https:// URL`},
		{"upstream no host", "role: relay\nupstream: https:///x", `upstream: "https:///x" has no host`},
		{"upstream query", "role: relay\nupstream: https://s.example/?a=1", `upstream: "https://s.example/?a=1" must not have a query or fragment`},
		{"upstream empty query", "role: relay\nupstream: https://s.example/?", `upstream: "https://s.example/?" must not have a query or fragment`},
		{"upstream fragment", "role: relay\nupstream: https://s.example/#x", `upstream: "https://s.example/#x" must not have a query or fragment`},
		{"upstream empty fragment", "role: relay\nupstream: https://s.example/#", `upstream: "https://s.example/#" must not have a query or fragment`},
		{"upstream plain http", "role: relay\nupstream: http://s.example", `upstream: "http://s.example" is plain http (set forward.allow_http to allow it)`},
		{"upstream unparsable", "role: relay\nupstream: \"https://s.example:port\"", `upstream: "https://s.example:port" is not a URL`},
		{"root upstream checked too", "upstream: http://s.example", `upstream: "http://s.example" is plain http (set forward.allow_http to allow it)`},
		{"data_dir", `data_dir: ""`, `data_dir: must not be empty`},
		{"nodes_poll_interval", "nodes_poll_interval: -1s", `nodes_poll_interval: must be >= 0, got -1s`},
		{"shutdown_grace zero", "shutdown_grace: 0s", `shutdown_grace: must be > 0, got 0s`},
		{"shutdown_grace negative", "shutdown_grace: -2m", `shutdown_grace: must be > 0, got -2m`},
		{"log.level", "log: {level: trace}", `log.level: "trace" is not debug, info, warn or error`},
		{"log.format", "log: {format: xml}", `log.format: "xml" is not text or json`},
		{"http.listen no port", "http: {listen: abc}", `http.listen: "abc" is not host:port`},
		{"http.listen empty", `http: {listen: ""}`, `http.listen: "" is not host:port`},
		{"http.listen port name", "http: {listen: 'localhost:http'}", `http.listen: "localhost:http": port "http" is not a number between 0 and 65535`},
		{"http.listen port range", "http: {listen: '127.0.0.1:65536'}", `http.listen: "127.0.0.1:65536": port "65536" is not a number between 0 and 65535`},
		{"http.listen port empty", "http: {listen: '127.0.0.1:'}", `http.listen: "127.0.0.1:": port "" is not a number between 0 and 65535`},
		{"http.listen port sign", "http: {listen: '127.0.0.1:+80'}", `http.listen: "127.0.0.1:+80": port "+80" is not a number between 0 and 65535`},
		{"http.listen host", "http: {listen: 'bad host:80'}", `http.listen: "bad host:80": "bad host" is not an IP address or host name`},
		{"allowed_networks", "http: {allowed_networks: [10.0.0.0/8, 10.0.0.0/33]}", `http.allowed_networks[1]: access list entry "10.0.0.0/33": not a CIDR: netip.ParsePrefix("10.0.0.0/33"): prefix length out of range`},
		{"allowed_networks empty item", `http: {allowed_networks: [""]}`, `http.allowed_networks[0]: access list entry "": empty entry`},
		{"allowed_networks hostname", "http: {allowed_networks: [localhost]}", `http.allowed_networks[0]: access list entry "localhost": not an IP address: ParseAddr("localhost"): unable to parse IP`},
		{"allowed_networks short", "http: {allowed_networks: ['1.2.3']}", `http.allowed_networks[0]: access list entry "1.2.3": not an IP address: ParseAddr("1.2.3"): IPv4 address too short`},
		{"allowed_networks zone", "http: {allowed_networks: ['fe80::1%eth0']}", `http.allowed_networks[0]: access list entry "fe80::1%eth0": address with a zone`},
		{"allowed_networks mapped too short", "http: {allowed_networks: ['::ffff:0.0.0.0/95']}", `http.allowed_networks[0]: access list entry "::ffff:0.0.0.0/95": IPv4-mapped prefix shorter than /96`},
		{"allowed_networks space", "http: {allowed_networks: [' 10.0.0.0/8']}", `http.allowed_networks[0]: " 10.0.0.0/8" has leading or trailing space`},
		{"policy_server_networks", "http: {policy_server_networks: [192.0.2.300]}", `http.policy_server_networks[0]: access list entry "192.0.2.300": not an IP address: ParseAddr("192.0.2.300"): IPv4 field has value >255`},
		{"metrics_networks", "admin: {metrics_networks: ['::1/129']}", `admin.metrics_networks[0]: access list entry "::1/129": not a CIDR: netip.ParsePrefix("::1/129"): prefix length out of range`},
		{"max_body zero", "http: {max_body: 0}", `http.max_body: must be > 0 and <= 64GiB, got 0B`},
		{"max_body too big", "http: {max_body: 65GiB}", `http.max_body: must be > 0 and <= 64GiB, got 65GiB`},
		{"request_log unknown", "http: {request_log: some}", `http.request_log: "some" is not all, errors or off`},
		{"request_log empty", `http: {request_log: ""}`, `http.request_log: "" is not all, errors or off`},
		{"request_log case", "http: {request_log: ALL}", `http.request_log: "ALL" is not all, errors or off`},
		{"tls_key missing", "http: {tls_cert: /c.pem}", `http.tls_key: required when http.tls_cert is set`},
		{"tls_cert missing", "http: {tls_key: /k.pem}", `http.tls_cert: required when http.tls_key is set`},
		{"local_listen not host:port", "http: {local_listen: localhost}", `http.local_listen: "localhost" is not host:port`},
		{"local_listen same as listen", "http: {listen: \"127.0.0.1:3030\", local_listen: \"127.0.0.1:3030\"}", `http.local_listen: "127.0.0.1:3030" is http.listen already`},
		{"read_header_timeout", "http: {read_header_timeout: 0s}", `http.read_header_timeout: must be > 0, got 0s`},
		{"idle_timeout", "http: {idle_timeout: -1s}", `http.idle_timeout: must be > 0, got -1s`},
		{"body_idle_timeout", "http: {body_idle_timeout: 0s}", `http.body_idle_timeout: must be > 0, got 0s`},
		{"upload_slot_wait", "http: {upload_slot_wait: 0s}", `http.upload_slot_wait: must be > 0, got 0s`},
		{"min_upload_rate unit", "http: {min_upload_rate: 1 parsec}", `http.min_upload_rate: invalid size "1 parsec": unknown unit "parsec" (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
		{"min_upload_rate negative", "http: {min_upload_rate: -1KiB}", `http.min_upload_rate: invalid size "-1KiB": must not be negative`},
		{"max_concurrent_uploads", "http: {max_concurrent_uploads: 0}", `http.max_concurrent_uploads: must be >= 1, got 0`},
		{"max_connections zero", "http: {max_connections: 0}", `http.max_connections: must be between 1 and 1048576, got 0`},
		{"max_connections below the upload slots", "http: {max_connections: 10, max_concurrent_uploads: 11}", `http.max_connections: 10 is fewer than http.max_concurrent_uploads (11): every upload needs a connection`},
		{"max_uploads_per_client negative", "http: {max_uploads_per_client: -1}", `http.max_uploads_per_client: must be 0 (a quarter of http.max_concurrent_uploads) or 1 to http.max_concurrent_uploads (64), got -1`},
		{"max_uploads_per_client over the slots", "http: {max_concurrent_uploads: 8, max_uploads_per_client: 9}", `http.max_uploads_per_client: must be 0 (a quarter of http.max_concurrent_uploads) or 1 to http.max_concurrent_uploads (8), got 9`},
		{"upload_preempt_rate negative", "http: {upload_preempt_rate: -1B}", `http.upload_preempt_rate: invalid size "-1B": must not be negative`},
		{"upload_preempt_rate unit", "http: {upload_preempt_rate: fast}", `http.upload_preempt_rate: invalid size "fast": want a whole number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)`},
		{"admin.listen", "admin: {listen: '3031'}", `admin.listen: "3031" is not host:port`},
		{"admin.token_file directory", "admin: {token_file: /var/lib/keel/}", `admin.token_file: "/var/lib/keel/" is not a file path`},
		{"admin.listen same as http", "admin: {listen: '127.0.0.1:3030'}", `admin.listen: "127.0.0.1:3030" is also http.listen (use another port, or empty to disable)`},
		{"cleanup_interval", "shared_files: {cleanup_interval: 999ms}", `shared_files.cleanup_interval: must be >= 1s, got 999ms`},
		{"min_backoff", "forward: {min_backoff: 0s}", `forward.min_backoff: must be > 0, got 0s`},
		{"max_backoff", "forward: {min_backoff: 10s, max_backoff: 5s}", `forward.max_backoff: 5s is less than forward.min_backoff (10s)`},
		{"concurrency zero", "forward: {concurrency: 0}", `forward.concurrency: must be between 1 and 256, got 0`},
		{"concurrency big", "forward: {concurrency: 257}", `forward.concurrency: must be between 1 and 256, got 257`},
		{"attempt_timeout", "forward: {attempt_timeout: 0s}", `forward.attempt_timeout: must be > 0, got 0s`},
		{"max_jobs", "forward: {max_jobs: 0}", `forward.max_jobs: must be >= 1, got 0`},
		{"sub_relay_url no placeholder", "forward: {sub_relay_url: 'https://relay'}", `forward.sub_relay_url: "https://relay" contains neither {hostname} nor {node_id}`},
		{"sub_relay_url other placeholder", "forward: {sub_relay_url: 'https://{hostname}/{port}'}", `forward.sub_relay_url: "https://{hostname}/{port}" has a placeholder other than {hostname} and {node_id}`},
		{"sub_relay_url scheme", "forward: {sub_relay_url: 'ftp://{hostname}'}", `forward.sub_relay_url: "ftp://{hostname}" is not an absolute http:// or https:// URL`},
		{"sub_relay_url no host", "forward: {sub_relay_url: 'https:///{node_id}'}", `forward.sub_relay_url: "https:///{node_id}" has no host`},
		{"sub_relay_url http", "forward: {sub_relay_url: 'http://{hostname}:3030'}", `forward.sub_relay_url: "http://{hostname}:3030" is plain http (set forward.allow_http to allow it)`},
		{"sub_relay_url unparsable", "forward: {sub_relay_url: 'https://{hostname}:port'}", `forward.sub_relay_url: "https://{hostname}:port" is not a URL`},
		{"key_hash shape", "forward: {tls: {key_hash: abc}}", `forward.tls.key_hash: invalid key hash "abc": want sha256:<hex>, sha512:<hex>, sha256//<base64> or sha512//<base64>`},
		{"key_hash algo", "forward: {tls: {key_hash: 'md5:00'}}", `forward.tls.key_hash: invalid key hash "md5:00": unknown algorithm "md5" (want sha256 or sha512)`},
		{"key_hash hex", "forward: {tls: {key_hash: 'sha256:zz'}}", `forward.tls.key_hash: invalid key hash "sha256:zz": encoding/hex: invalid byte: U+007A 'z'`},
		{"key_hash empty digest", "forward: {tls: {key_hash: 'sha256:'}}", `forward.tls.key_hash: invalid key hash "sha256:": no hash value`},
		{"key_hash base64", "forward: {tls: {key_hash: 'sha256//***'}}", `forward.tls.key_hash: invalid key hash "sha256//***": illegal base64 data at input byte 0`},
		{"key_hash unpadded base64", "forward: {tls: {key_hash: 'sha256//kGGR7iJmbBYCqkM5EAC8TuCpR3X2jE+9wbKHz1Kxh1w'}}", `forward.tls.key_hash: invalid key hash "sha256//kGGR7iJmbBYCqkM5EAC8TuCpR3X2jE+9wbKHz1Kxh1w": the base64 value must be padded with "=" (as Rudder writes it)`},
		{"key_hash length", "forward: {tls: {key_hash: 'sha512:906191ee22666c1602aa43391000bc4ee0a94775f68f4c19edc83bfb1b28755c'}}", `forward.tls.key_hash: invalid key hash "sha512:906191ee22666c1602aa43391000bc4ee0a94775f68f4c19edc83bfb1b28755c": 32 bytes, want 64 for sha512`},
		{"command empty list", "remote_run: {command: []}", `remote_run.command: must have at least one element (the program to run)`},
		{"command null", "remote_run: {command: }", `remote_run.command: must have at least one element (the program to run)`},
		{"command empty program", `remote_run: {command: ["", run]}`, `remote_run.command[0]: must not be empty`},
		{"command placeholder in program", "remote_run: {command: ['{hostname}', run]}", `remote_run.command[0]: the program must not contain a placeholder, got "{hostname}"`},
		{"command placeholder inside program", "remote_run: {command: ['/opt/{node_id}/bin/agent']}", `remote_run.command[0]: the program must not contain a placeholder, got "/opt/{node_id}/bin/agent"`},
		{"command unknown placeholder in program", "remote_run: {command: ['/opt/{x}/agent']}", `remote_run.command[0]: unknown placeholder "{x}" (use {hostname}, {node_id} or {classes})`},
		{"command empty arg", `remote_run: {command: [rudder, remote, ""]}`, `remote_run.command[2]: must not be empty`},
		{"command null arg", "remote_run: {command: [rudder, ~]}", `remote_run.command[1]: must not be empty`},
		{"command unknown placeholder", "remote_run: {command: [rudder, remote, run, '{host}']}", `remote_run.command[3]: unknown placeholder "{host}" (use {hostname}, {node_id} or {classes})`},
		{"command placeholder case", "remote_run: {command: [rudder, '{Hostname}']}", `remote_run.command[1]: unknown placeholder "{Hostname}" (use {hostname}, {node_id} or {classes})`},
		{"command placeholder spaces", "remote_run: {command: [rudder, '{ hostname }']}", `remote_run.command[1]: unknown placeholder "{ hostname }" (use {hostname}, {node_id} or {classes})`},
		{"command empty braces", "remote_run: {command: [rudder, '--json={}']}", `remote_run.command[1]: unknown placeholder "{}" (use {hostname}, {node_id} or {classes})`},
		{"command second placeholder bad", "remote_run: {command: [rudder, '{hostname}:{port}']}", `remote_run.command[1]: unknown placeholder "{port}" (use {hostname}, {node_id} or {classes})`},
		{"command nested braces", "remote_run: {command: [rudder, '{{hostname}}']}", `remote_run.command[1]: unknown placeholder "{{hostname}" (use {hostname}, {node_id} or {classes})`},
		{"command NUL", `remote_run: {command: [rudder, "a\0b"]}`, `remote_run.command[1]: "a\x00b" contains a NUL byte`},
		{"command NUL in program", `remote_run: {command: ["/bin/x\0"]}`, `remote_run.command[0]: "/bin/x\x00" contains a NUL byte`},
		{"command every bad arg", "remote_run: {command: ['', '{a}', ok, '{b}']}", "remote_run.command[0]: must not be empty\nremote_run.command[1]: unknown placeholder \"{a}\" (use {hostname}, {node_id} or {classes})\nremote_run.command[3]: unknown placeholder \"{b}\" (use {hostname}, {node_id} or {classes})"},
		{"remote concurrency zero", "remote_run: {concurrency: 0}", `remote_run.concurrency: must be between 1 and 1024, got 0`},
		{"remote concurrency big", "remote_run: {concurrency: 1025}", `remote_run.concurrency: must be between 1 and 1024, got 1025`},
		{"remote timeout zero", "remote_run: {timeout: 0s}", `remote_run.timeout: must be > 0 and <= 24h, got 0s`},
		{"remote timeout negative", "remote_run: {timeout: -5m}", `remote_run.timeout: must be > 0 and <= 24h, got -5m`},
		{"remote timeout long", "remote_run: {timeout: 24h0m1s}", `remote_run.timeout: must be > 0 and <= 24h, got 24h0m1s`},
		{"max_calls zero", "remote_run: {max_calls: 0}", `remote_run.max_calls: must be between 1 and 1024, got 0`},
		{"max_calls big", "remote_run: {max_calls: 1025}", `remote_run.max_calls: must be between 1 and 1024, got 1025`},
		{"remote sub_relay_url no placeholder", "remote_run: {sub_relay_url: 'https://relay'}", `remote_run.sub_relay_url: "https://relay" contains neither {hostname} nor {node_id}`},
		{"remote sub_relay_url other placeholder", "remote_run: {sub_relay_url: 'https://{hostname}/{classes}'}", `remote_run.sub_relay_url: "https://{hostname}/{classes}" has a placeholder other than {hostname} and {node_id}`},
		{"remote sub_relay_url scheme", "remote_run: {sub_relay_url: 'ftp://{hostname}'}", `remote_run.sub_relay_url: "ftp://{hostname}" is not an absolute http:// or https:// URL`},
		{"remote sub_relay_url empty", `remote_run: {sub_relay_url: ""}`, `remote_run.sub_relay_url: "" contains neither {hostname} nor {node_id}`},
		{"remote sub_relay_url http", "remote_run: {sub_relay_url: 'http://{hostname}:3030'}", `remote_run.sub_relay_url: "http://{hostname}:3030" is plain http (set forward.allow_http to allow it)`},
		{"remote sub_relay_url unparsable", "remote_run: {sub_relay_url: 'https://{node_id}:port'}", `remote_run.sub_relay_url: "https://{node_id}:port" is not a URL`},
		{"mem_table_size", "storage: {mem_table_size: 0}", `storage.mem_table_size: must be > 0, got 0B`},
		{"block_cache_size", "storage: {block_cache_size: 0}", `storage.block_cache_size: must be > 0, got 0B`},
		{"index_cache_size", "storage: {index_cache_size: 0}", `storage.index_cache_size: must be > 0, got 0B`},
		{"num_memtables", "storage: {num_memtables: 0}", `storage.num_memtables: must be >= 1, got 0`},
		{"value_log_file_size small", "storage: {value_log_file_size: 1023KiB}", `storage.value_log_file_size: must be at least 1MiB and below 1GiB (value-log files are mmapped, which 32-bit ARM cannot do for larger files), got 1023KiB`},
		{"value_log_file_size big", "storage: {value_log_file_size: 1GiB}", `storage.value_log_file_size: must be at least 1MiB and below 1GiB (value-log files are mmapped, which 32-bit ARM cannot do for larger files), got 1GiB`},
		{"chunk_size small", "storage: {chunk_size: 4095}", `storage.chunk_size: must be between 4KiB and 4MiB, got 4095B`},
		{"chunk_size big", "storage: {chunk_size: 5MiB}", `storage.chunk_size: must be between 4KiB and 4MiB, got 5MiB`},
		{"value_threshold zero", "storage: {value_threshold: 0}", `storage.value_threshold: must be > 0, got 0B`},
		{"value_threshold vs chunk", "storage: {value_threshold: 256KiB}", `storage.value_threshold: 256KiB must be less than storage.chunk_size (256KiB)`},
		{"value_threshold cap", "storage: {value_threshold: 2MiB, chunk_size: 4MiB, mem_table_size: 64MiB}", `storage.value_threshold: must be <= 1MiB, got 2MiB`},
		{"value_threshold vs memtable", "storage: {value_threshold: 200KiB, mem_table_size: 1MiB}", `storage.value_threshold: 200KiB is more than 15% of storage.mem_table_size (1MiB), which the storage engine refuses`},
		{"num_compactors", "storage: {num_compactors: 1}", `storage.num_compactors: must be >= 2, got 1`},
		{"edge.listen", "edge: {listen: '50056'}", `edge.listen: "50056" is not host:port`},
		{"edge plaintext off loopback", "edge: {listen: '0.0.0.0:50056'}", `edge.listen: "0.0.0.0:50056" is not a loopback address: set edge.tls.cert_file and key_file (or edge.allow_plaintext: true behind a TLS-terminating proxy)`},
		{"edge plaintext any", "edge: {listen: ':50056'}", `edge.listen: ":50056" is not a loopback address: set edge.tls.cert_file and key_file (or edge.allow_plaintext: true behind a TLS-terminating proxy)`},
		{"edge tls key missing", "edge: {tls: {cert_file: /c.pem}}", `edge.tls.key_file: required when edge.tls.cert_file is set`},
		{"edge tls cert missing", "edge: {tls: {key_file: /k.pem}}", `edge.tls.cert_file: required when edge.tls.key_file is set`},
		{"edge.role", "edge: {role: edge}", `edge.role: "edge" is not controller, hybrid, relay_coordinator or worker`},
		{"edge heartbeat", "edge: {heartbeat_interval: 10s}", `edge.heartbeat_interval: must be >= 20s (the listener's keepalive floor), got 10s`},
		{"edge stale", "edge: {stale_threshold: 30s}", `edge.stale_threshold: 30s must be more than edge.heartbeat_interval (30s)`},
		{"edge token_ttl", "edge: {token_ttl: 30s, overlap_window: 10s}", `edge.token_ttl: must be between 1m and 24h, got 30s`},
		{"edge overlap", "edge: {overlap_window: 2h}", `edge.overlap_window: must be > 0 and <= edge.token_ttl, got 2h`},
		{"edge attest", "edge: {attest_per_minute: 0}", `edge.attest_per_minute: must be between 1 and 10000, got 0`},
		{"edge challenges", "edge: {max_pending_challenges: 0}", `edge.max_pending_challenges: must be between 1 and 1000000, got 0`},
		{"edge reserved challenges", "edge: {reserved_challenges: 0}", `edge.reserved_challenges: must be between 1 and 1000000, got 0`},
		{"edge challenges per source", "edge: {challenges_per_source: 0}", `edge.challenges_per_source: must be between 1 and 1000000, got 0`},
		{"edge challenges per source over network", "edge: {challenges_per_source: 40}", `edge.challenges_per_source: 40 is more than edge.challenges_per_network (32): a source is in one network`},
		{"edge challenges per network", "edge: {challenges_per_network: 2000000}", `edge.challenges_per_network: must be between 1 and 1000000, got 2000000`},
		{"edge issuer empty", "edge: {trusted_issuers: [{public_key_file: /k.pem}]}", `edge.trusted_issuers[0].issuer: must not be empty`},
		{"edge issuer file empty", "edge: {trusted_issuers: [{issuer: up}]}", `edge.trusted_issuers[0].public_key_file: must not be empty`},
		{"edge issuer own prefix", "edge: {trusted_issuers: [{issuer: 'keel-relay:x', public_key_file: /k}]}", `edge.trusted_issuers[0].issuer: "keel-relay:x": the keel-relay: prefix is this relay's own`},
		{"edge issuer twice", "edge: {trusted_issuers: [{issuer: a, public_key_file: /k}, {issuer: a, public_key_file: /j}]}", `edge.trusted_issuers[1].issuer: "a" is listed twice`},
		{"edge issuer unknown key", "edge: {trusted_issuers: [{issuer: a, public_key_file: /k, kid: x}]}", `edge.trusted_issuers[0]: has invalid keys: kid`},
		{"edge hello", "edge: {hello_timeout: 0s}", `edge.hello_timeout: must be > 0, got 0s`},
		{"edge queue", "edge: {stream_queue: 0}", `edge.stream_queue: must be between 1 and 65536, got 0`},
		{"edge flush", "edge: {flush_interval: 0s}", `edge.flush_interval: must be > 0, got 0s`},
		{"edge drain", "edge: {drain_grace: -1s}", `edge.drain_grace: must be > 0, got -1s`},
		{"edge max_streams", "edge: {max_streams: 0}", `edge.max_streams: must be between 1 and 1000000, got 0`},
		{"edge reflection word", "edge: {reflection: maybe}", `edge.reflection: invalid switch "maybe": want true, false or "auto"`},
		{"edge reflection number", "edge: {reflection: 2}", `edge.reflection: expected true, false or "auto", got integer 2`},
		{"edge reflection list", "edge: {reflection: [true]}", `edge.reflection: expected true, false or "auto", got a list`},
		{"memory.limit small", "memory: {limit: 31MiB}", `memory.limit: must be auto or at least 32MiB, got 31MiB`},
		{"memory.limit zero", "memory: {limit: 0}", `memory.limit: must be auto or at least 32MiB, got 0B`},
		{"memory.limit word", "memory: {limit: lots}", `memory.limit: invalid size "lots": want a whole number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), or auto`},
		{"memory.limit negative", "memory: {limit: -64MiB}", `memory.limit: invalid size "-64MiB": must not be negative, or auto`},
		{"memory unknown key", "memory: {max: 64MiB}", `unknown key "memory.max"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadBytes([]byte(tc.yaml), nil)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tc.want)
			}
		})
	}
}

func TestValidateReportsEveryKey(t *testing.T) {
	c := Default()
	c.Role = "x"
	c.HTTP.Listen = "x"
	c.Storage.NumCompactors = 0
	err := c.Validate()
	want := []string{
		`role: "x" is not root or relay`,
		`http.listen: "x" is not host:port`,
		`storage.num_compactors: must be >= 2, got 0`,
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %v is not joined", err)
	}
	var got []string
	for _, e := range joined.Unwrap() {
		got = append(got, e.Error())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, tc := range []struct{ name, yaml string }{
		{"relay https", "role: relay\nupstream: https://server.example"},
		{"relay https port path", "role: relay\nupstream: https://192.0.2.1:8443/rudder/relay-api/"},
		{"relay http allowed", "role: relay\nupstream: http://127.0.0.1:3030\nforward: {allow_http: true}"},
		{"root with upstream", "upstream: https://server.example"},
		{"admin disabled", `admin: {listen: ""}`},
		{"listen any", "http: {listen: ':3030'}\nadmin: {listen: ':3031'}"},
		{"listen ipv6", "http: {listen: '[::1]:3030'}"},
		{"listen ipv6 zone", "http: {listen: '[fe80::1%eth0]:3030'}"},
		{"listen hostname", "http: {listen: 'relay.example.com:443'}"},
		{"listen port 0 twice", "http: {listen: '127.0.0.1:0'}\nadmin: {listen: '127.0.0.1:0'}"},
		{"single ips", "http: {allowed_networks: [192.0.2.1, '::1'], policy_server_networks: [10.1.2.3/32]}"},
		{"networks host bits and v6", "http: {allowed_networks: [10.1.2.3/8, 'fd00::/8', '::ffff:10.0.0.0/104']}\nadmin: {metrics_networks: ['0.0.0.0/0', '::/0']}"},
		{"no networks", "http: {allowed_networks: []}"},
		{"node id chars", "node_id: e745a140-40bc-4b86-b6dc-084488fc906b"},
		{"node id 255", "node_id: " + strings.Repeat("n", 255)},
		{"poll never", "nodes_poll_interval: 0"},
		{"sub relay node_id", "forward: {sub_relay_url: 'https://{node_id}.relays.example:8443/api'}"},
		{"sub relay http allowed", "forward: {sub_relay_url: 'http://{hostname}:3030', allow_http: true}"},
		{"key hash sha256 b64", "forward: {tls: {key_hash: 'sha256//kGGR7iJmbBYCqkM5EAC8TuCpR3X2jE+9wbKHz1Kxh1w='}}"},
		{"key hash sha512 hex", "forward: {tls: {key_hash: 'sha512:" + strings.Repeat("aB", 64) + "'}}"},
		{"key hash sha512 b64", "forward: {tls: {key_hash: 'sha512//" + strings.Repeat("A", 86) + "=='}}"},
		{"command program only", "remote_run: {command: [/usr/bin/true]}"},
		{"command windows path", `remote_run: {command: ['C:\Program Files\Rudder\bin\rudder.exe', remote, run, '{hostname}']}`},
		{"command placeholders inside args", "remote_run: {command: [ssh, 'root@{hostname}', '--', 'agent run -D {classes} # {node_id}']}"},
		{"command lone braces", "remote_run: {command: [x, '{', '}', 'a}b{c', '{hostname']}"},
		{"command repeated placeholder", "remote_run: {command: [x, '{hostname}{hostname}{node_id}']}"},
		{"remote limits low", "remote_run: {concurrency: 1, max_calls: 1, timeout: 1ns}"},
		{"remote limits high", "remote_run: {concurrency: 1024, max_calls: 1024, timeout: 24h}"},
		{"remote sub relay node_id", "remote_run: {sub_relay_url: 'https://{node_id}.relays.example:8443/x'}"},
		{"remote sub relay http allowed", "remote_run: {sub_relay_url: 'http://{hostname}:3030'}\nforward: {allow_http: true}"},
		{"max body limit", "http: {max_body: 64GiB}"},
		{"value log bounds", "storage: {value_log_file_size: 1MiB}"},
		{"value log top", "storage: {value_log_file_size: 1073741823}"},
		{"chunk bounds", "storage: {chunk_size: 4MiB, value_threshold: 1MiB, mem_table_size: 8MiB}"},
		{"tls both", "http: {tls_cert: /c.pem, tls_key: /k.pem}"},
		{"case-insensitive keys", "HTTP: {Listen: '127.0.0.1:80'}"},
		{"edge loopback v6", "edge: {listen: '[::1]:50056'}"},
		{"edge localhost", "edge: {listen: 'localhost:0'}"},
		{"edge tls off loopback", "edge: {listen: '0.0.0.0:443', tls: {cert_file: /c.pem, key_file: /k.pem}}"},
		{"edge plaintext allowed", "edge: {listen: '0.0.0.0:50056', allow_plaintext: true}"},
		{"edge disabled off loopback", "edge: {listen: '0.0.0.0:50056', enabled: false}"},
		{"edge reflection on", "edge: {reflection: true}"},
		{"edge reflection off", "edge: {reflection: false}"},
		{"edge reflection auto", "edge: {reflection: ' Auto '}"},
		{"memory.limit auto", "memory: {limit: auto}"},
		{"memory.limit AUTO", "memory: {limit: ' AUTO '}"},
		{"memory.limit 32MiB", "memory: {limit: 32MiB}"},
		{"memory.limit 64 MiB", "memory: {limit: 64 MiB}"},
		{"memory.limit bytes", "memory: {limit: 1073741824}"},
		{"edge trusted issuers", "edge: {trusted_issuers: [{issuer: 'https://up.example', public_key_file: /k.pem}]}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := LoadBytes([]byte(tc.yaml), nil); err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
}
