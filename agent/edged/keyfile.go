package edged

import (
	"crypto/ed25519"
	"fmt"

	"github.com/keel-relay/keel/internal/edkey"
	"github.com/keel-relay/keel/internal/fsutil"
)

// maxKeyFile bounds what a key file may hold.
const maxKeyFile = edkey.MaxPEM

// LoadKey reads and parses a key file.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	b, err := fsutil.ReadFileMax(path, maxKeyFile)
	if err != nil {
		return nil, err
	}
	k, err := edkey.ParsePrivate(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}
