package agentuploads

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/keel-relay/keel/internal/wire/uploadname"
	"github.com/keel-relay/keel/relay/nodecerts"
	"github.com/keel-relay/keel/relay/nodecerts/nodecertstest"
)

// TestClientCertificate: on a TLS listener set up by nodecerts.Holder, a known node
// certificate stands instead of Basic credentials, on every kind; a client without one
// still needs Basic; an unknown certificate does not get through the handshake.
func TestClientCertificate(t *testing.T) {
	const node = "5d1b6cd2-2b0f-4ee9-9c5b-4e0e4f7fd2a1"
	_, certPEM, keyPEM := nodecertstest.Issue(t, node, "node1.example.test")
	_, strangerPEM, strangerKey := nodecertstest.Issue(t, "stranger", "stranger.example.test")
	bundle := filepath.Join(t.TempDir(), "nodescerts.pem")
	if err := os.WriteFile(bundle, nodecertstest.Bundle(certPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	holder := nodecerts.NewHolder(bundle, slog.New(slog.DiscardHandler))
	k := newKit(t, kitOptions{clientNode: nodecerts.NodeID, tls: func(s *httptest.Server) {
		s.TLS = &tls.Config{MinVersion: tls.VersionTLS13}
		holder.ConfigureTLS(s.TLS)
	}})
	clientWith := func(certs ...tls.Certificate) *http.Client {
		tr := k.srv.Client().Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = certs
		return &http.Client{Transport: tr}
	}
	put := func(c *http.Client, path string, basic bool) (int, error) {
		req, _ := http.NewRequest(http.MethodPut, k.srv.URL+path, bytes.NewReader([]byte("bytes of "+path)))
		if basic {
			req.SetBasicAuth(acceptedUser, acceptedPass)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	nodeClient := clientWith(nodecertstest.TLSCertificate(t, certPEM, keyPEM))
	for _, kind := range uploadname.Kinds {
		name := invGz
		if kind == uploadname.Report {
			name = reportName
		}
		if code, err := put(nodeClient, "/"+kind.Dir()+"/"+name, false); err != nil || code != http.StatusCreated {
			t.Errorf("%s with a node certificate: %d, %v; want 201", kind.Dir(), code, err)
		}
	}
	if code, err := put(clientWith(), "/reports/"+reportName, false); err != nil || code != http.StatusUnauthorized {
		t.Errorf("no certificate, no Basic: %d, %v; want 401", code, err)
	}
	if code, err := put(clientWith(), "/reports/"+reportName, true); err != nil || code != http.StatusNoContent {
		t.Errorf("no certificate, Basic: %d, %v; want 204", code, err)
	}
	if code, err := put(clientWith(nodecertstest.TLSCertificate(t, strangerPEM, strangerKey)), "/reports/x.log", true); err == nil {
		t.Errorf("an unknown certificate got through: %d", code)
	}
	if got := len(k.kept(t, uploadname.Report)) + len(k.kept(t, uploadname.Inventory)) + len(k.kept(t, uploadname.InventoryUpdate)); got != 3 {
		t.Errorf("kept %d uploads, want 3", got)
	}
}
