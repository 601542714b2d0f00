package faults

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// TestBoxTLS: the relay API over TLS with the relay's agent key pair (PKCS#1, self-signed
// certificate), called as the agent's curl calls it: no chain validation, the relay key
// pinned. TLS 1.3 is negotiated; a node certificate of nodescerts.pem is accepted and names
// the node (its /policies/, an upload without Basic credentials), one that is not in the
// bundle is refused at the handshake, and no certificate at all is fine for uploads with
// Basic credentials; doubled slashes in a path are one.
func TestBoxTLS(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	nodeA, nodeB := nodeUUID(), nodeUUID()
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, nodeMapOf(map[string]string{"root": "root", nodeA: "root", nodeB: "root"}))
	boxFiles(t, dir, nodeA)
	writeFile(t, dir, "share/"+nodeB+"/rules/cfengine-community/promises.cf", []byte("B\n"))
	writeHtpasswd(t, dir, "htpasswd-webdav-initial", initialUser+":"+initialAPR1)
	writeHtpasswd(t, dir, "htpasswd-webdav", bcryptUser+":"+bcryptHash(t, bcryptPass))
	rootDir := filepath.Join(dir, "rudder") // the Rudder server's /var/rudder, there before Keel
	if err := os.MkdirAll(rootDir, 0o755); err != nil {
		t.Fatal(err)
	}

	relayKey := selfSigned(t, newRSAKey(t), "root", "")
	writeFile(t, dir, "agent.cert", relayKey.certPEM)
	writeFile(t, dir, "localhost.priv", relayKey.keyPEM)
	certA := selfSigned(t, newRSAKey(t), nodeA, nodeA)
	certB := selfSigned(t, newRSAKey(t), nodeB, nodeB)
	// Not in the bundle: node A's id on another key, and a node nobody knows.
	impostor := selfSigned(t, newRSAKey(t), nodeA, nodeA)
	stranger := selfSigned(t, certA.key, "stranger", nodeUUID())
	writeFile(t, dir, "nodescerts.pem", append(append([]byte{}, certA.certPEM...), certB.certPEM...))

	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := boxSettings(baseSettings("root", filepath.Join(dir, "data"), nodes, api, admin), dir)
	s["http.tls_cert"] = fmt.Sprintf("%q", filepath.Join(dir, "agent.cert"))
	s["http.tls_key"] = fmt.Sprintf("%q", filepath.Join(dir, "localhost.priv"))
	s["agent_uploads.root_dir"] = fmt.Sprintf("%q", rootDir)
	local := relaytest.FreeAddr(t) // relayd's 127.0.0.1:3030, which Rudder's tools call in plain HTTP
	s["http.local_listen"] = local
	p := startRelayTLS(t, "relay", writeConfig(t, dir, "relay.yaml", s), api, admin)

	// `rudder relay reload` on the local plain-HTTP listener, while the API speaks TLS.
	if code, body, err := do(newClient(10*time.Second), http.MethodPost, "http://"+local+"/rudder/relay-api/1/system/reload", nil); err != nil ||
		code != http.StatusOK || string(body) != `{"result":"success","action":"reloadConfiguration"}` {
		t.Errorf("POST system/reload on http.local_listen: %d %q %v", code, body, err)
	}

	pin := relayKey.pin()
	anon := pinnedClient(pin, nil)
	tlsA, tlsB := certA.tlsCert(t), certB.tlsCert(t)
	asA, asB := pinnedClient(pin, &tlsA), pinnedClient(pin, &tlsB)

	// No client certificate: TLS 1.3, the pinned key, uploads with Basic credentials.
	resp, err := anon.Get(p.api + "/uuid")
	if err != nil {
		t.Fatalf("GET /uuid over TLS, relay key pinned: %v", err)
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
		t.Errorf("GET /uuid: TLS state %+v, want TLS 1.3", resp.TLS)
	}
	now := time.Now()
	gz, _ := inventoryNames(now, nodeA)
	if code, _, b, err := agentPut(anon, p.api+"//inventories/"+gz, initialUser, initialPass, content(1, 4<<10), false); err != nil || code != http.StatusCreated {
		t.Errorf("PUT //inventories/<name> (doubled slash) with Basic: %d %q %v, want 201", code, b, err)
	}
	if _, err := os.Stat(filepath.Join(rootDir, "inventories/incoming", gz)); err != nil {
		t.Errorf("PUT //inventories/%s: not handed to the server: %v", gz, err)
	}
	repA := reportName(now, nodeA)
	if code, hdr, _, err := agentPut(anon, p.api+"/reports/"+repA, "", "", content(2, 4<<10), false); err != nil || code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") == "" {
		t.Errorf("PUT /reports/ without credentials nor certificate: %d %v, want 401 with WWW-Authenticate", code, err)
	}
	if code, _, _, err := get(anon, http.MethodGet, p.api+"/policies/"+nodeA+"/rules/cfengine-community/promises.cf", nil); err != nil || code != http.StatusForbidden {
		t.Errorf("GET /policies/<A>/ without a certificate: %d %v, want 403", code, err)
	}
	if code, _, _, err := get(anon, http.MethodHead, p.api+"/rudder/relay-api/1/shared-folder/file?hash="+sharedSum, nil); err != nil || code < 400 {
		t.Errorf("HEAD shared-folder over TLS without a certificate: %d %v, want a refusal (a node certificate is required)", code, err)
	}

	// Node A's certificate: its policies (ETag, 304), not B's; an upload without Basic.
	policy := p.api + "/policies/" + nodeA + "/rules/cfengine-community/promises.cf"
	code, hdr, body, err := get(asA, http.MethodGet, policy, nil)
	if err != nil || code != http.StatusOK || body != "bundle agent main {}\n" || hdr.Get("ETag") == "" {
		t.Errorf("GET /policies/<A>/... as A: %d %q ETag %q %v, want 200, the file and an ETag", code, body, hdr.Get("ETag"), err)
	} else if code, _, _, err := get(asA, http.MethodGet, policy, map[string]string{"If-None-Match": hdr.Get("ETag")}); err != nil || code != http.StatusNotModified {
		t.Errorf("GET /policies/<A>/... as A, If-None-Match its ETag: %d %v, want 304", code, err)
	}
	if code, _, _, err := get(asB, http.MethodGet, policy, nil); err != nil || code != http.StatusForbidden {
		t.Errorf("GET /policies/<A>/... as B: %d %v, want 403", code, err)
	}
	if code, _, body, err := get(asB, http.MethodGet, p.api+"//policies/"+nodeB+"//rules/cfengine-community/promises.cf", nil); err != nil || code != http.StatusOK || body != "B\n" {
		t.Errorf("GET //policies/<B>//... as B: %d %q %v, want 200", code, body, err)
	}
	if code, _, _, err := get(asA, http.MethodHead, p.api+"/rudder/relay-api/1/shared-folder/file?hash="+sharedSum+"&hash_type=sha256", nil); err != nil || code != http.StatusNotModified {
		t.Errorf("HEAD shared-folder as A: %d %v, want 304", code, err)
	}
	if code, _, b, err := agentPut(asA, p.api+"/reports/"+repA, "", "", content(3, 4<<10), false); err != nil || code != http.StatusCreated {
		t.Errorf("PUT /reports/<A's report> with A's certificate, no Basic: %d %q %v, want 201", code, b, err)
	}

	// Certificates not in nodescerts.pem are refused at the handshake.
	for name, kp := range map[string]keyPair{"node A's id on another key": impostor, "an unknown node": stranger} {
		c := kp.tlsCert(t)
		if code, _, _, err := get(pinnedClient(pin, &c), http.MethodGet, p.api+"/uuid", nil); err == nil {
			t.Errorf("GET /uuid with the certificate of %s: %d, want the handshake refused", name, code)
		}
	}
	// A client pinning another key does not talk to the relay (the pin is what protects the agent).
	if _, _, _, err := get(pinnedClient(certA.pin(), nil), http.MethodGet, p.api+"/uuid", nil); err == nil {
		t.Error("a client pinning another key got an answer")
	}

	// The agent key as CFEngine keeps it: legacy encrypted PEM under CFEngine's passphrase.
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("no openssl: the encrypted agent key is not tried")
		return
	}
	enc := filepath.Join(dir, "localhost-encrypted.priv")
	out, err := exec.Command(openssl, "rsa", "-in", filepath.Join(dir, "localhost.priv"), "-out", enc,
		"-traditional", "-des3", "-passout", "pass:Cfengine passphrase").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl rsa -des3: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(enc); err != nil || !strings.Contains(string(b), "Proc-Type: 4,ENCRYPTED") {
		t.Fatalf("openssl did not write a legacy encrypted PEM: %v\n%s", err, b)
	}
	p.stop(t)
	s["http.tls_key"] = fmt.Sprintf("%q", enc)
	p = startRelayTLS(t, "relay", writeConfig(t, dir, "relay-encrypted-key.yaml", s), api, admin)
	if code, _, body, err := get(anon, http.MethodGet, p.api+"/uuid", nil); err != nil || code != http.StatusOK || strings.TrimSpace(body) != "root" {
		t.Errorf("GET /uuid, the relay's key encrypted as CFEngine keeps it, pinned: %d %q %v", code, body, err)
	}
}
