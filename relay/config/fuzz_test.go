package config

import (
	"testing"
)

// FuzzLoadBytes feeds arbitrary YAML and environment to LoadBytes: it must never
// panic, and whatever it accepts must validate and survive a YAML() round trip.
func FuzzLoadBytes(f *testing.F) {
	f.Add([]byte(defaultYAML), "")
	f.Add([]byte(""), "KEEL_HTTP_ALLOWED_NETWORKS=10.0.0.0/8,::1\nKEEL_STORAGE_CHUNK_SIZE=1MiB")
	f.Add([]byte("role: relay\nupstream: https://s.example\nhttp: {listen: '[::1]:0'}"), "KEEL_FORWARD_TLS_CA_FILE=/ca.pem")
	f.Add([]byte("http: {listen: [1,2]}"), "")
	f.Add([]byte("shutdown_grace: soon\nhttp: 5"), "KEEL_FORWARD_CONCURRENCY=abc")
	f.Add([]byte("a: &a [*a, *a]\nb: *a"), "")
	f.Add([]byte("forward:\n  tls:\n    key_hash: 'sha256//kGGR7iJmbBYCqkM5EAC8TuCpR3X2jE+9wbKHz1Kxh1w='"), "")
	f.Add([]byte("data_dir: \"\\x00\\u00e9\"\nnodes_file: 'a: b # c'"), "KEEL_NODES_FILE=\t")
	f.Add([]byte("{? [a] : b}"), "")
	f.Add([]byte("---\n---\n"), "")
	f.Add([]byte("remote_run:\n  command: [\"/opt/my tools/run\", 'a, b', \"{hostname}:{node_id}\", '{', \"-D\", '{classes}']\n  timeout: 24h"), "KEEL_REMOTE_RUN_MAX_CALLS=1024")
	f.Add([]byte("remote_run: {command: '/bin/x {hostname}', concurrency: 0}"), "KEEL_REMOTE_RUN_COMMAND=/bin/x,{host}")
	f.Add([]byte("remote_run: {command: [\"a\\0\", '{}', ~, 5]}"), "KEEL_REMOTE_RUN_COMMAND= , ,\nKEEL_REMOTE_RUN_TIMEOUT=0s")
	f.Add([]byte("forward: {allow_http: true}\nremote_run: {sub_relay_url: 'http://{node_id}:3030'}"), "KEEL_REMOTE_RUN_SUB_RELAY_URL=https://{hostname}/{classes}")
	f.Add([]byte("edge: {trusted_issuers: [{issuer: up, public_key_file: /k.pem}], listen: '[::1]:0'}"), "KEEL_EDGE_TRUSTED_ISSUERS=a=/x,b=\nKEEL_EDGE_ROLE=worker")
	f.Add([]byte("edge: {reflection: true, listen: '0.0.0.0:1', allow_plaintext: true}"), "KEEL_EDGE_REFLECTION=auto")
	f.Add([]byte("edge: {reflection: [auto]}"), "KEEL_EDGE_REFLECTION= Off ")
	f.Fuzz(func(t *testing.T, yamlText []byte, envText string) {
		if err := files.CheckRoundTrip(yamlText, envText); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseByteSize checks ParseByteSize never panics, never returns a negative
// size, and that String() of what it parses reads back the same.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"0", "256MiB", "64 MiB", "1GiB", "512KiB", "1048576", "10MB",
		"-1", "1.5GiB", "", "MiB", "9223372036854775807", "8388608TiB", "1\u212aiB", " 7 tb "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseByteSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseByteSize(%q) = %d", s, n)
		}
		back, err := ParseByteSize(n.String())
		if err != nil || back != n {
			t.Fatalf("ParseByteSize(%q) = %d; String %q reads back %d, %v", s, n, n.String(), back, err)
		}
	})
}

// FuzzParseAutoByteSize checks ParseAutoByteSize never panics, returns Auto or a size that
// is not negative, and that String() of what it parses reads back the same.
func FuzzParseAutoByteSize(f *testing.F) {
	for _, s := range []string{"auto", " AUTO ", "autox", "0", "2GiB", "-1", "", "auto 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseAutoByteSize(s)
		if err != nil {
			return
		}
		if n < 0 && n != Auto {
			t.Fatalf("ParseAutoByteSize(%q) = %d", s, n)
		}
		back, err := ParseAutoByteSize(n.String())
		if err != nil || back != n {
			t.Fatalf("ParseAutoByteSize(%q) = %d; String %q reads back %d, %v", s, n, n.String(), back, err)
		}
	})
}
