package faults

// The relay-box kit (SPEC-relay-box.md): a recording upstream that can be down and then come
// up on the same port, htpasswd files, an agent-style upload client, and the TLS material of a
// relay box (the relay's key pair, node client certificates, a client pinning the relay key).

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/keel-relay/keel/relay/relaytest"
)

// received is one PUT the recording upstream answered.
type received struct {
	Path       string // the request path as sent ("/reports/<name>")
	Kind, Name string // first segment and the rest of Path
	User, Pass string // HTTP Basic credentials ("" when absent)
	Sum        string // sha256 hex of the body
	Size       int
}

// recorder is an upstream on loopback that records every PUT and answers 201 (or 503 while
// refuse is above 0). It starts down (nothing listens on its port) until up is called.
type recorder struct {
	addr string
	srv  *http.Server

	// refuse is how many of the next PUTs are answered 503 (and not recorded), as an upstream
	// in trouble answers.
	refuse atomic.Int32

	mu   sync.Mutex
	puts []received
}

// newRecorder returns a recording upstream on a free loopback port, down.
func newRecorder(t *testing.T, addr string) *recorder {
	t.Helper()
	if addr == "" {
		addr = relaytest.FreeAddr(t)
	}
	r := &recorder{addr: addr}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

// URL is the recorder's base URL.
func (r *recorder) URL() string { return "http://" + r.addr }

// up starts listening on the recorder's port (retried while the port is still in TIME_WAIT
// or briefly held).
func (r *recorder) up(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("recorder: listen on %s: %v", r.addr, err)
	}
	go func() { _ = r.srv.Serve(ln) }()
}

func (r *recorder) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPut {
		http.Error(w, "PUT only", http.StatusMethodNotAllowed)
		return
	}
	if r.refuse.Add(-1) >= 0 {
		http.Error(w, "the test's upstream is busy", http.StatusServiceUnavailable)
		return
	}
	h := sha256.New()
	n, err := io.Copy(h, req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	user, pass, _ := req.BasicAuth()
	kind, name, _ := strings.Cut(strings.TrimPrefix(req.URL.Path, "/"), "/")
	r.mu.Lock()
	r.puts = append(r.puts, received{Path: req.URL.Path, Kind: kind, Name: name, User: user, Pass: pass,
		Sum: fmt.Sprintf("%x", h.Sum(nil)), Size: int(n)})
	r.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

// got returns a copy of the PUTs recorded so far, in arrival order.
func (r *recorder) got() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.puts)
}

// Passwords of the test htpasswd files, one per hash scheme Rudder's files hold. The apr1
// hash was made with `openssl passwd -apr1 -salt RudderSa rudder` (Rudder's initial
// rudder:rudder) and `openssl passwd -apr1 -salt keelsalt apr-secret`.
const (
	initialUser, initialPass = "rudder", "rudder"
	initialAPR1              = "$apr1$RudderSa$D4I7wBW28UCh2A.L93RE0."
	aprUser, aprPass         = "apr-node", "apr-secret"
	aprHash                  = "$apr1$keelsalt$VevpcWqrYmlGDj9BhCquB0"
	bcryptUser, bcryptPass   = "rudder", "bcrypt-secret"
	shaUser, shaPass         = "sha-node", "sha-secret"
)

// bcryptHash returns an Apache bcrypt hash ($2y$, as `htpasswd -B` writes it) of password,
// at bcrypt's minimum cost (the relay's work does not depend on it).
func bcryptHash(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return "$2y$" + strings.TrimPrefix(string(h), "$2a$")
}

// shaHash returns the {SHA} htpasswd hash of password.
func shaHash(password string) string {
	sum := sha1.Sum([]byte(password))
	return "{SHA}" + base64.StdEncoding.EncodeToString(sum[:])
}

// writeHtpasswd writes an htpasswd file of "user:hash" lines and returns its path.
func writeHtpasswd(t testing.TB, dir, name string, lines ...string) string {
	t.Helper()
	return writeFile(t, dir, name, []byte(strings.Join(lines, "\n")+"\n"))
}

// writeFile writes data to dir/name (making dir) and returns the path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// nodeUUID returns a fresh Rudder-style node id.
func nodeUUID() string { return uuid.NewString() }

// reportName is a report's file name as the agent makes it: "<UTC datetime>@<node>.log.gz".
func reportName(at time.Time, node string) string {
	return at.UTC().Format("2006-01-02T15:04:05") + "+00:00@" + node + ".log.gz"
}

// inventoryNames are the two files of an inventory: "<uuid>_<datetime>.ocs.gz" and ".ocs.sign".
func inventoryNames(at time.Time, node string) (gz, sign string) {
	base := node + "_" + at.UTC().Format("2006-01-02T15:04:05") + "+00:00.ocs"
	return base + ".gz", base + ".sign"
}

// agentPut PUTs body to url as the agent's curl does (Basic auth when user is set, no
// Content-Type) and returns the status, the answer's headers and body.
func agentPut(c *http.Client, url, user, pass string, body []byte, expectContinue bool) (int, http.Header, string, error) {
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	if expectContinue {
		req.Header.Set("Expect", "100-continue")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), err
}

// pacedAgentPut is agentPut with the body sent in pieces of piece bytes, pace apart: the
// upload stays in flight a while.
func pacedAgentPut(c *http.Client, url, user, pass string, body []byte, piece int, pace time.Duration) (int, string, error) {
	req, err := http.NewRequest(http.MethodPut, url, &pacedReader{b: body, piece: piece, pace: pace})
	if err != nil {
		return 0, "", err
	}
	req.ContentLength = int64(len(body))
	req.SetBasicAuth(user, pass)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// pacedReader reads b at most piece bytes at a time, pausing pace before each piece but the
// first.
type pacedReader struct {
	b     []byte
	piece int
	pace  time.Duration
	off   int
}

func (r *pacedReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	if r.off > 0 {
		time.Sleep(r.pace)
	}
	n := copy(p[:min(len(p), r.piece)], r.b[r.off:])
	r.off += n
	return n, nil
}

// get sends a GET (or HEAD) with optional headers and returns status, headers and body.
func get(c *http.Client, method, url string, hdr map[string]string) (int, http.Header, string, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, nil, "", err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), err
}

// uidOID is the subject attribute UID (userid) carrying a Rudder node id.
var uidOID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}

// keyPair is a key and its self-signed certificate.
type keyPair struct {
	key     *rsa.PrivateKey
	cert    *x509.Certificate
	certPEM []byte
	keyPEM  []byte // PKCS#1 ("RSA PRIVATE KEY"), as the Rudder agent keeps its key
}

// tlsCert is the pair as a tls.Certificate.
func (k keyPair) tlsCert(t testing.TB) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(k.certPEM, k.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pin is the key's sha256//<base64> SPKI hash, as curl --pinnedpubkey takes it.
func (k keyPair) pin() string { return spkiPin(k.cert) }

func spkiPin(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256//" + base64.StdEncoding.EncodeToString(sum[:])
}

// selfSigned makes a self-signed certificate over key: a node certificate when uid is set
// (subject UID = uid, as Rudder agents make theirs), else a server certificate for
// 127.0.0.1 and localhost.
func selfSigned(t testing.TB, key *rsa.PrivateKey, cn, uid string) keyPair {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if uid != "" {
		tmpl.Subject.ExtraNames = []pkix.AttributeTypeAndValue{{Type: uidOID, Value: uid}}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{
		key: key, cert: cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
	}
}

// newRSAKey returns a fresh 2048-bit key.
func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pinnedClient is the agent's curl: no chain validation, the server key pinned
// (--pinnedpubkey sha256//...), and a client certificate when one is given.
func pinnedClient(pin string, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{
		InsecureSkipVerify: true, // the pin below is the check, as with curl --insecure --pinnedpubkey
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no server certificate")
			}
			if got := spkiPin(cs.PeerCertificates[0]); got != pin {
				return fmt.Errorf("server key %s does not match the pinned %s", got, pin)
			}
			return nil
		},
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: cfg, DisableKeepAlives: true, Proxy: nil, ForceAttemptHTTP2: false,
	}}
}

// boxSettings adds the relay-box keys to s: htpasswd files, the shared folder, policies and
// node certificates under dir (files that do not exist are simply absent), quick retries.
func boxSettings(s settings, dir string) settings {
	q := func(p string) string { return fmt.Sprintf("%q", filepath.Join(dir, p)) }
	s["agent_uploads.htpasswd_initial"] = q("htpasswd-webdav-initial")
	s["agent_uploads.htpasswd"] = q("htpasswd-webdav")
	s["shared_folder.path"] = q("shared-files")
	s["policies.path"] = q("share")
	s["policies.common_path"] = q("share/common")
	s["tls.node_certs"] = q("nodescerts.pem")
	s["forward.min_backoff"] = "100ms"
	s["forward.max_backoff"] = "500ms"
	s["forward.attempt_timeout"] = "10s"
	return s
}
