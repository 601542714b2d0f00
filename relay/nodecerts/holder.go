package nodecerts

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
)

// Holder is the Set in force, read from a file and read again on Reload. It is safe for
// concurrent use.
type Holder struct {
	path string
	log  *slog.Logger

	cur atomic.Pointer[Set]

	mu      sync.Mutex // serializes Reload
	missing bool       // the file was missing at the last Reload (and that was logged)
}

// NewHolder returns a Holder of the bundle at path, read now. A missing file gives an empty
// set (no certificate accepted), with a warning; so does a file that does not parse, with an
// error logged. An empty path is no bundle: an empty set, nothing logged.
func NewHolder(path string, log *slog.Logger) *Holder {
	h := &Holder{path: path, log: log}
	h.cur.Store(&Set{})
	if err := h.Reload(); err != nil {
		log.Error("node certificates not loaded: no client certificate accepted", "path", path, "err", err)
	}
	return h
}

// Reload reads the bundle again and puts it in force. On an error the set in force is kept
// and the error returned; a missing file is no error: the set becomes empty, with a warning
// (once until the file is back).
func (h *Holder) Reload() error {
	if h.path == "" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s, err := Load(h.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !h.missing {
			h.log.Warn("node certificates file missing: no client certificate accepted", "path", h.path)
			h.missing = true
		}
		h.cur.Store(&Set{})
		return nil
	case err != nil:
		return fmt.Errorf("node certificates: %w", err)
	}
	if h.missing {
		h.log.Info("node certificates file back", "path", h.path)
	}
	h.missing = false
	h.cur.Store(s)
	h.log.Debug("node certificates loaded", "path", h.path, "certificates", s.Len())
	return nil
}

// Current is the Set in force.
func (h *Holder) Current() *Set { return h.cur.Load() }

// ConfigureTLS makes c (a server's configuration) request a client certificate and accept a
// connection without one, or with one that is in the Set in force when the connection is
// made (a handshake error otherwise). The check runs on every connection, resumed ones
// included (tls.Config.VerifyConnection, after any check c already had), so a certificate
// removed by Reload is refused from then on.
func (h *Holder) ConfigureTLS(c *tls.Config) {
	c.ClientAuth = tls.RequestClientCert
	prev := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if prev != nil {
			if err := prev(cs); err != nil {
				return err
			}
		}
		if len(cs.PeerCertificates) == 0 {
			return nil
		}
		leaf := cs.PeerCertificates[0]
		if _, ok := h.Current().lookupDER(leaf.Raw); !ok {
			return fmt.Errorf("client certificate (CN %.64q) is not a known node certificate", leaf.Subject.CommonName)
		}
		return nil
	}
}
