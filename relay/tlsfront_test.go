package relay_test

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/tlspin"
	"github.com/keel-relay/keel/internal/wire/keyhash"
	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/nodecerts/nodecertstest"
	"github.com/keel-relay/keel/relay/relaytest"
)

// oidUID is the subject attribute Rudder names a node by in its certificate.
var oidUID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}

// agentCert returns a self-signed certificate for n's key, as a Rudder agent makes its
// agent.cert: subject CN = hostname, UID = node id.
func agentCert(t testing.TB, n *relaytest.Node) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject: pkix.Name{CommonName: n.Hostname,
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidUID, Value: n.ID}}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{n.Hostname},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &n.Key.PublicKey, n.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// pkcs1 is n's key as Rudder agents keep localhost.priv: PEM "RSA PRIVATE KEY".
func pkcs1(n *relaytest.Node) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(n.Key)})
}

// writeAgentPair writes n's agent.cert and localhost.priv under dir and returns their paths.
func writeAgentPair(t testing.TB, dir string, n *relaytest.Node) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "agent.cert"), filepath.Join(dir, "localhost.priv")
	relaytest.WriteFileAtomic(t, certFile, agentCert(t, n))
	relaytest.WriteFileAtomic(t, keyFile, pkcs1(n))
	return certFile, keyFile
}

// pinOf is the pin agents give curl (--pinnedpubkey sha256//<base64>) for n's key.
func pinOf(t testing.TB, n *relaytest.Node) keyhash.Pin {
	t.Helper()
	p, err := keyhash.Parse(n.Pin())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsRelay starts a relay whose API listener speaks TLS with the agent key pair of self.
func tlsRelay(t testing.TB, self *relaytest.Node, nodes []byte, edit func(*config.Config)) (*relaytest.Relay, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := relaytest.Config(t, dir, self.ID, nodes)
	cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = writeAgentPair(t, dir, self)
	cfg.NodesPollInterval = 0
	if edit != nil {
		edit(cfg)
	}
	r := relaytest.Start(t, cfg)
	return r, "https://" + r.APIAddr().String()
}

// pinnedClient is an agent's client: no chain validation, the relay's key pinned, and
// optionally a client certificate.
func pinnedClient(pin keyhash.Pin, cert *tls.Certificate, edit func(*tls.Config)) *http.Client {
	conf := tlspin.PinnedConfig(pin)
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	if edit != nil {
		edit(conf)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}}
}

// getInfo calls system/info and returns the answer, or the error.
func getInfo(c *http.Client, base string) (*http.Response, []byte, error) {
	resp, err := c.Get(base + "/rudder/relay-api/1/system/info")
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// TestTLSFrontAgentKey: the API listener presents the Rudder agent's key pair (PKCS#1 key,
// self-signed agent.cert); a client pinning that key (as agents do, with no chain
// validation) gets TLS 1.3, a client pinning another key refuses the relay, a TLS 1.2-only
// client is still served, and plain HTTP is refused.
func TestTLSFrontAgentKey(t *testing.T) {
	t.Parallel()
	self := relaytest.NewNode("relay1", "root", 5)
	n1 := relaytest.NewNode("n1", "relay1", 1)
	_, base := tlsRelay(t, self, relaytest.NodeMap(self, n1), nil)

	resp, body, err := getInfo(pinnedClient(pinOf(t, self), nil, nil), base)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"action":"getSystemInfo"`) {
		t.Fatalf("pinned client: %v %v %s", err, resp, body)
	}
	if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
		t.Errorf("negotiated %v, want TLS 1.3", resp.TLS)
	}
	if got := resp.TLS.PeerCertificates[0].Subject.CommonName; got != self.Hostname {
		t.Errorf("presented certificate of %q, want the agent's (%q)", got, self.Hostname)
	}

	if _, _, err := getInfo(pinnedClient(pinOf(t, n1), nil, nil), base); err == nil || !strings.Contains(err.Error(), "does not match the pinned key") {
		t.Errorf("client pinning another key: %v, want a pin mismatch", err)
	}

	resp, _, err = getInfo(pinnedClient(pinOf(t, self), nil, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }), base)
	if err != nil || resp.StatusCode != http.StatusOK || resp.TLS.Version != tls.VersionTLS12 {
		t.Errorf("TLS 1.2-only client: %v %v", err, resp)
	}

	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + strings.TrimPrefix(base, "https://") + "/rudder/relay-api/1/system/info"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the TLS listener: %d, want 400 or a refused connection", resp.StatusCode)
		}
	}
}

// TestTLSFrontEncryptedAgentKey: a localhost.priv encrypted as CFEngine writes it (legacy
// PEM encryption, DES-EDE3-CBC, passphrase "Cfengine passphrase", made with openssl) is read.
func TestTLSFrontEncryptedAgentKey(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not found")
	}
	self := relaytest.NewNode("relay1", "root", 6)
	_, base := tlsRelay(t, self, relaytest.NodeMap(self), func(c *config.Config) {
		plain := c.HTTP.TLSKey + ".plain"
		if err := os.Rename(c.HTTP.TLSKey, plain); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("openssl", "rsa", "-in", plain, "-out", c.HTTP.TLSKey, "-des3", "-traditional",
			"-passout", "pass:Cfengine passphrase").CombinedOutput()
		if err != nil {
			t.Fatalf("openssl: %v %s", err, out)
		}
		if b, _ := os.ReadFile(c.HTTP.TLSKey); !strings.Contains(string(b), "Proc-Type: 4,ENCRYPTED") || !strings.Contains(string(b), "DES-EDE3-CBC") {
			t.Fatalf("openssl did not write a legacy encrypted key:\n%s", b)
		}
	})
	if resp, _, err := getInfo(pinnedClient(pinOf(t, self), nil, nil), base); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pinned client: %v %v", err, resp)
	}
}

// TestTLSFrontBadPairAtStart: a key pair that does not load stops the relay from starting,
// with an error naming the keys.
func TestTLSFrontBadPairAtStart(t *testing.T) {
	t.Parallel()
	self := relaytest.NewNode("relay1", "root", 5)
	other := relaytest.NewNode("other", "root", 6)
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, cert, key string)
		err  string
	}{
		{"key of another certificate", func(t *testing.T, _, key string) { relaytest.WriteFileAtomic(t, key, pkcs1(other)) }, "private key does not match public key"},
		{"missing key", func(t *testing.T, _, key string) { _ = os.Remove(key) }, "no such file"},
		{"garbage certificate", func(t *testing.T, cert, _ string) { relaytest.WriteFileAtomic(t, cert, []byte("not PEM")) }, "certificate"},
		{"empty key", func(t *testing.T, _, key string) { relaytest.WriteFileAtomic(t, key, nil) }, "empty file"},
		{"encrypted with another passphrase", func(t *testing.T, _, key string) {
			//lint:ignore SA1019 the format CFEngine writes, made here to be refused
			b, err := x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(self.Key), []byte("other"), x509.PEMCipher3DES)
			if err != nil {
				t.Fatal(err)
			}
			relaytest.WriteFileAtomic(t, key, pem.EncodeToMemory(b))
		}, "CFEngine's passphrase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := relaytest.Config(t, dir, self.ID, relaytest.NodeMap(self))
			cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = writeAgentPair(t, dir, self)
			tc.edit(t, cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
			_, err := relay.New(cfg, relay.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err == nil {
				t.Fatal("relay.New: no error")
			}
			if !strings.Contains(err.Error(), "http.tls_cert/tls_key") || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("relay.New: %v, want it to name http.tls_cert/tls_key and say %q", err, tc.err)
			}
		})
	}
}

// TestTLSFrontReload: a reload re-reads the key pair (new connections get the new key); a
// pair that does not load is reported by the reload (relayd's error answer) and the key in
// force stays.
func TestTLSFrontReload(t *testing.T) {
	t.Parallel()
	self := relaytest.NewNode("relay1", "root", 5)
	next := relaytest.NewNode("relay1", "root", 6) // the relay's new key
	r, base := tlsRelay(t, self, relaytest.NodeMap(self), nil)
	reload := func() (int, string) {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Post(base+"/rudder/relay-api/1/system/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	relaytest.WriteFileAtomic(t, r.Config.HTTP.TLSCert, agentCert(t, next))
	relaytest.WriteFileAtomic(t, r.Config.HTTP.TLSKey, pkcs1(next))
	if code, body := reload(); code != http.StatusOK || body != httpapi.ReloadSuccess {
		t.Fatalf("reload with a new pair: %d %s", code, body)
	}
	if _, _, err := getInfo(pinnedClient(pinOf(t, next), nil, nil), base); err != nil {
		t.Errorf("after the reload, a client pinning the new key: %v", err)
	}
	if _, _, err := getInfo(pinnedClient(pinOf(t, self), nil, nil), base); err == nil {
		t.Error("after the reload, a client pinning the old key still connects")
	}

	// A key that does not match the certificate: the reload says so, the new key stays.
	relaytest.WriteFileAtomic(t, r.Config.HTTP.TLSKey, pkcs1(self))
	code, body := reload()
	if code != http.StatusInternalServerError || !strings.HasPrefix(body, `{"result":"error","action":"reloadConfiguration","errorDetails":"`) ||
		!strings.Contains(body, "the key pair in force stays") {
		t.Errorf("reload with a bad pair: %d %s, want 500 and relayd's error saying the pair in force stays", code, body)
	}
	if _, _, err := getInfo(pinnedClient(pinOf(t, next), nil, nil), base); err != nil {
		t.Errorf("after a bad reload, a client pinning the key in force: %v", err)
	}
	if _, _, err := getInfo(pinnedClient(pinOf(t, self), nil, nil), base); err == nil || !strings.Contains(err.Error(), "does not match the pinned key") {
		t.Errorf("after a bad reload, a client pinning the refused key: %v, want a pin mismatch", err)
	}
}

// TestTLSFrontNodeCerts: a client certificate is asked for but optional; one in
// tls.node_certs (Rudder's nodescerts.pem) is accepted, an unknown one fails the handshake;
// a reload with a new bundle lets a new node in, and a bundle that does not parse leaves the
// one in force (the reload says why).
func TestTLSFrontNodeCerts(t *testing.T) {
	t.Parallel()
	self := relaytest.NewNode("relay1", "root", 5)
	_, n1PEM, n1Key := nodecertstest.Issue(t, "n1", "n1.example.test")
	_, n2PEM, n2Key := nodecertstest.Issue(t, "n2", "n2.example.test")
	n1Cert, n2Cert := nodecertstest.TLSCertificate(t, n1PEM, n1Key), nodecertstest.TLSCertificate(t, n2PEM, n2Key)
	var bundle string
	r, base := tlsRelay(t, self, relaytest.NodeMap(self, relaytest.NewNode("n1", "relay1", 1), relaytest.NewNode("n2", "relay1", 2)), func(c *config.Config) {
		bundle = filepath.Join(filepath.Dir(c.HTTP.TLSCert), "nodescerts.pem")
		relaytest.WriteFileAtomic(t, bundle, nodecertstest.Bundle(n1PEM))
		c.TLS.NodeCerts = bundle
	})
	pin := pinOf(t, self)
	call := func(cert *tls.Certificate) error {
		resp, _, err := getInfo(pinnedClient(pin, cert, nil), base)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = errors.New(resp.Status)
		}
		if err == nil && (resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13) {
			err = errors.New("not TLS 1.3")
		}
		return err
	}
	reload := func() (int, string) {
		t.Helper()
		resp, err := pinnedClient(pin, &n1Cert, nil).Post(base+"/rudder/relay-api/1/system/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if err := call(nil); err != nil {
		t.Errorf("no client certificate: %v, want accepted", err)
	}
	if err := call(&n1Cert); err != nil {
		t.Errorf("n1's certificate (in nodescerts.pem): %v, want accepted", err)
	}
	if err := call(&n2Cert); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("n2's certificate (unknown): %v, want the handshake refused", err)
	}
	if !strings.Contains(r.LogText(), "not a known node certificate") {
		t.Error("the refused handshake was not logged")
	}

	relaytest.WriteFileAtomic(t, bundle, nodecertstest.Bundle(n1PEM, n2PEM))
	if code, body := reload(); code != http.StatusOK || body != httpapi.ReloadSuccess {
		t.Fatalf("reload with n2 added: %d %s", code, body)
	}
	if err := call(&n2Cert); err != nil {
		t.Errorf("n2's certificate after the reload: %v, want accepted", err)
	}

	relaytest.WriteFileAtomic(t, bundle, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"))
	if code, body := reload(); code != http.StatusInternalServerError || !strings.Contains(body, "tls.node_certs not reloaded") {
		t.Errorf("reload with a broken bundle: %d %s, want 500 saying tls.node_certs was not reloaded", code, body)
	}
	if err := call(&n2Cert); err != nil {
		t.Errorf("n2's certificate after a refused reload: %v, want still accepted", err)
	}
}

// TestLocalListen: http.local_listen serves the same relay API in plain HTTP next to the TLS
// listener (Rudder's tools call relayd's 127.0.0.1:3030): `rudder relay reload` gets its
// exact bytes there; a drain closes both listeners; an address in use fails the start.
func TestLocalListen(t *testing.T) {
	t.Parallel()
	self := relaytest.NewNode("relay1", "root", 5)
	local := relaytest.FreeAddr(t)
	r, base := tlsRelay(t, self, relaytest.NodeMap(self), func(c *config.Config) { c.HTTP.LocalListen = local })

	resp, err := http.Post("http://"+local+"/rudder/relay-api/1/system/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != httpapi.ReloadSuccess {
		t.Errorf("reload on local_listen: %d %q", resp.StatusCode, body)
	}
	code, st := relaytest.Do(t, http.MethodGet, "http://"+local+"//rudder/relay-api/1/system/status", nil)
	if s, err := httpapi.DecodeStatus([]byte(st)); code != http.StatusOK || err != nil || s.NodeID != "relay1" {
		t.Errorf("status on local_listen: %d %v %s", code, err, st)
	}
	if resp, _, err := getInfo(pinnedClient(pinOf(t, self), nil, nil), base); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the TLS listener next to it: %v %v", err, resp)
	}

	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, addr := range []string{local, r.APIAddr().String()} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the drain", addr)
		}
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := relaytest.Config(t, t.TempDir(), "relay1", relaytest.NodeMap(self))
	cfg.HTTP.LocalListen = busy.Addr().String()
	if _, err := relay.New(cfg, relay.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err == nil || !strings.Contains(err.Error(), "http.local_listen") {
		t.Errorf("local_listen on an address in use: %v", err)
	}
}

// BenchmarkTLSFrontHandshake: one request per new TLS connection (as agents make them: a
// curl per file), with the relay's 2048-bit RSA agent key, pinned, with a node certificate.
func BenchmarkTLSFrontHandshake(b *testing.B) {
	self := relaytest.NewNode("relay1", "root", 5)
	_, certPEM, keyPEM := nodecertstest.Issue(b, "n1", "n1.example.test")
	cert := nodecertstest.TLSCertificate(b, certPEM, keyPEM)
	_, base := tlsRelay(b, self, relaytest.NodeMap(self), func(c *config.Config) {
		c.TLS.NodeCerts = filepath.Join(filepath.Dir(c.HTTP.TLSCert), "nodescerts.pem")
		relaytest.WriteFileAtomic(b, c.TLS.NodeCerts, certPEM)
	})
	c := pinnedClient(pinOf(b, self), &cert, nil)
	b.ResetTimer()
	for b.Loop() {
		if resp, _, err := getInfo(c, base); err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("%v %v", err, resp)
		}
	}
}

// TestTLSFrontPolicies: through the assembly, the node named by a verified client
// certificate gets its own policies over TLS (also with doubled slashes), another node and a
// client without a certificate get 403.
func TestTLSFrontPolicies(t *testing.T) {
	t.Parallel()
	self := relaytest.NewNode("relay1", "root", 5)
	_, n1PEM, n1Key := nodecertstest.Issue(t, "n1", "n1.example.test")
	_, n2PEM, n2Key := nodecertstest.Issue(t, "n2", "n2.example.test")
	n1Cert, n2Cert := nodecertstest.TLSCertificate(t, n1PEM, n1Key), nodecertstest.TLSCertificate(t, n2PEM, n2Key)
	_, base := tlsRelay(t, self, relaytest.NodeMap(self, relaytest.NewNode("n1", "relay1", 1), relaytest.NewNode("n2", "relay1", 2)), func(c *config.Config) {
		dir := filepath.Dir(c.HTTP.TLSCert)
		c.TLS.NodeCerts = filepath.Join(dir, "nodescerts.pem")
		relaytest.WriteFileAtomic(t, c.TLS.NodeCerts, nodecertstest.Bundle(n1PEM, n2PEM))
		c.Policies.Path = filepath.Join(dir, "share")
		if err := os.MkdirAll(filepath.Join(c.Policies.Path, "n1", "rules"), 0o755); err != nil {
			t.Fatal(err)
		}
		relaytest.WriteFileAtomic(t, filepath.Join(c.Policies.Path, "n1", "rules", "promises.cf"), []byte("bundle agent main {}\n"))
	})
	get := func(cert *tls.Certificate, path string) (int, string) {
		t.Helper()
		resp, err := pinnedClient(pinOf(t, self), cert, nil).Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name string
		cert *tls.Certificate
		path string
		code int
	}{
		{"its own policies", &n1Cert, "/policies/n1/rules/promises.cf", http.StatusOK},
		{"doubled slashes", &n1Cert, "//policies//n1/rules//promises.cf", http.StatusOK},
		{"another node's", &n2Cert, "/policies/n1/rules/promises.cf", http.StatusForbidden},
		{"no certificate", nil, "/policies/n1/rules/promises.cf", http.StatusForbidden},
	} {
		if code, body := get(tc.cert, tc.path); code != tc.code || (code == http.StatusOK && body != "bundle agent main {}\n") {
			t.Errorf("%s: GET %s: %d %q, want %d", tc.name, tc.path, code, body, tc.code)
		}
	}
}
