// Package nodecerts knows the node client certificates (Rudder's nodescerts.pem) and names a
// TLS client by its certificate's subject UID.
//
// Rudder agents make a self-signed certificate whose subject is "UID=<node id>, CN=<host>";
// the server collects them in one PEM bundle. A client certificate is accepted only if it is,
// byte for byte, one of the bundle's (the TLS handshake proves the client holds its key); its
// node is the UID of its subject.
package nodecerts

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"

	"github.com/keel-relay/keel/internal/fsutil"
	"github.com/keel-relay/keel/internal/wire/ids"
)

// MaxFileSize is the largest certificate bundle read, in bytes (a node certificate is about
// 2 KB in PEM: room for some 30 000 nodes).
const MaxFileSize = 64 << 20

// oidUID is the object identifier of the UID attribute (RFC 4519 userid,
// 0.9.2342.19200300.100.1.1) that holds a node id in a Rudder node certificate's subject.
var oidUID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}

// Set is a set of node certificates, looked up by exact (DER) equality. It is immutable, safe
// for concurrent use; the zero value is not usable, an empty Set is Parse(nil).
type Set struct {
	nodes map[[sha256.Size]byte]string // sha256 of a certificate's DER -> its node id
}

// pemBegin starts a PEM certificate block.
const pemBegin = "-----BEGIN CERTIFICATE-----"

// Parse reads the CERTIFICATE blocks of a PEM bundle; other blocks and text around blocks are
// skipped. A CERTIFICATE block that is not valid PEM, does not parse, or whose subject has no
// valid UID is an error naming its index (1 for the first CERTIFICATE block).
func Parse(pemBytes []byte) (*Set, error) {
	s := &Set{nodes: make(map[[sha256.Size]byte]string)}
	rest := pemBytes
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		n++
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n, err)
		}
		id, err := SubjectUID(cert)
		if err != nil {
			return nil, fmt.Errorf("certificate %d (CN %.64q): %w", n, cert.Subject.CommonName, err)
		}
		s.nodes[sha256.Sum256(cert.Raw)] = id
	}
	// pem.Decode skips a malformed block silently: count the ones it skipped.
	if begins := bytes.Count(pemBytes, []byte(pemBegin)); begins != n {
		return nil, fmt.Errorf("certificate %d: not a valid PEM block (%d BEGIN CERTIFICATE lines, %d blocks read)",
			n+1, begins, n)
	}
	return s, nil
}

// Load reads and parses the bundle at path (at most MaxFileSize bytes). A missing file is an
// error for which errors.Is(err, fs.ErrNotExist) holds.
func Load(path string) (*Set, error) {
	data, err := fsutil.ReadFileMax(path, MaxFileSize)
	if err != nil {
		return nil, err
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Len is the number of distinct certificates in s.
func (s *Set) Len() int { return len(s.nodes) }

// Lookup returns the node id of cert if cert is (byte for byte) one of s.
func (s *Set) Lookup(cert *x509.Certificate) (nodeID string, ok bool) {
	if cert == nil {
		return "", false
	}
	return s.lookupDER(cert.Raw)
}

// lookupDER returns the node id of the certificate whose DER is der, if in s.
func (s *Set) lookupDER(der []byte) (string, bool) {
	id, ok := s.nodes[sha256.Sum256(der)]
	return id, ok
}

// SubjectUID returns the node id in cert's subject: its one UID attribute (OID 0.9.2342.19200300.100.1.1), which
// must be a valid node id (ids.ValidNodeID).
func SubjectUID(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", errors.New("no certificate")
	}
	var uid string
	found := false
	for _, atv := range cert.Subject.Names {
		if !atv.Type.Equal(oidUID) {
			continue
		}
		if found {
			return "", errors.New("subject has more than one UID")
		}
		s, ok := atv.Value.(string)
		if !ok {
			return "", fmt.Errorf("subject UID is a %T, not a string", atv.Value)
		}
		uid, found = s, true
	}
	if !found {
		return "", errors.New("subject has no UID")
	}
	if err := ids.ValidNodeID(uid); err != nil {
		return "", fmt.Errorf("subject UID: %w", err)
	}
	return uid, nil
}

// NodeID returns the node id (the subject UID) of the client certificate of r. It is false on
// plain HTTP and when the client presented no certificate. The certificate is trusted as the
// TLS handshake accepted it: r must come from a listener set up by Holder.ConfigureTLS.
func NodeID(r *http.Request) (string, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", false
	}
	id, err := SubjectUID(r.TLS.PeerCertificates[0])
	if err != nil {
		return "", false
	}
	return id, true
}
