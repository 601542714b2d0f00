package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/agent/sharedfile"
	"github.com/keel-relay/keel/internal/nodekey"
	"github.com/keel-relay/keel/internal/wire/ids"
)

// maxUUIDFile bounds what NodeID reads from uuid_file.
const maxUUIDFile = 4096

// NodeID returns this node's id: node_id, or else the content of uuid_file
// (where a Rudder agent keeps it), trimmed. Errors name the file.
func NodeID(cfg *config.Config) (string, error) {
	if cfg.NodeID != "" {
		return cfg.NodeID, nil
	}
	f, err := os.Open(cfg.UUIDFile)
	if err != nil {
		return "", fmt.Errorf("node_id is not set and it cannot be read from uuid_file: %w", err)
	}
	defer f.Close()
	b := make([]byte, maxUUIDFile)
	n, err := f.Read(b)
	if err != nil && n == 0 {
		return "", fmt.Errorf("node_id is not set and uuid_file %s is empty or unreadable: %w", cfg.UUIDFile, err)
	}
	id := strings.TrimSpace(string(b[:n]))
	if err := ids.ValidNodeID(id); err != nil {
		return "", fmt.Errorf("uuid_file %s: %w", cfg.UUIDFile, err)
	}
	return id, nil
}

// LoadIdentity returns who this node is, from cfg: its id, its key (key_file),
// and the hostname, keydate and keyid its signature blocks carry (derived from
// the machine and the key when the config leaves them empty).
func LoadIdentity(cfg *config.Config) (sharedfile.Identity, error) {
	id, err := NodeID(cfg)
	if err != nil {
		return sharedfile.Identity{}, err
	}
	key, err := nodekey.Load(cfg.KeyFile, cfg.KeyPassphrase)
	if err != nil {
		return sharedfile.Identity{}, err
	}
	host := cfg.Hostname
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			return sharedfile.Identity{}, fmt.Errorf("hostname is not set and the system's cannot be read: %w", err)
		}
		if host == "" {
			return sharedfile.Identity{}, errors.New("hostname is not set and the system's is empty")
		}
	}
	keydate, keyid := cfg.KeyDate, cfg.KeyID
	if keydate == "" {
		keydate = nodekey.KeyDate(key.ModTime)
	}
	if keyid == "" {
		keyid = nodekey.KeyID(&key.Private.PublicKey)
	}
	return sharedfile.Identity{NodeID: id, Key: key.Private, Hostname: host, KeyDate: keydate, KeyID: keyid}, nil
}

// NewClient returns a shared-files client for the relay and identity in cfg.
func NewClient(cfg *config.Config, log *slog.Logger) (*sharedfile.Client, error) {
	ident, err := LoadIdentity(cfg)
	if err != nil {
		return nil, err
	}
	return sharedfile.New(sharedfile.Options{
		RelayURL: cfg.RelayURL, Timeout: cfg.HTTP.Timeout,
		CAFile: cfg.HTTP.CAFile, KeyHash: cfg.HTTP.KeyHash,
		Identity: ident, Logger: log,
	})
}
