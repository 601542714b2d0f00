package relay

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/keel-relay/keel/edge/keys"
	edgeserver "github.com/keel-relay/keel/edge/server"
	"github.com/keel-relay/keel/storage"
)

// BackupStore writes a backup of store to w. When dataDir holds the edge signing key, a copy
// of it is kept in the store first so that the backup carries it: a relay restored from the
// backup signs and verifies the same tokens, and its edge daemons need not enroll again.
func BackupStore(store *storage.Store, dataDir string, w io.Writer) error {
	pemBytes, err := keys.ReadFile(edgeserver.SigningKeyPath(dataDir))
	switch {
	case err == nil:
		if err := store.SetSigningKey(pemBytes); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("backup: %w", err)
	}
	return store.Backup(w)
}

// SigningKeyRestore says what RestoreSigningKey did.
type SigningKeyRestore struct {
	Path     string // the key file
	Restored bool   // the backup carried a key, and Path now holds it
	Replaced bool   // Path held a different key before
}

// RestoreSigningKey writes the edge signing key carried by a restored store (see BackupStore)
// to its file in dataDir, replacing a different one. A store without a copy changes nothing.
func RestoreSigningKey(store *storage.Store, dataDir string) (SigningKeyRestore, error) {
	res := SigningKeyRestore{Path: edgeserver.SigningKeyPath(dataDir)}
	pemBytes, err := store.SigningKey()
	if errors.Is(err, storage.ErrNotFound) {
		return res, nil
	}
	if err != nil {
		return res, err
	}
	replaced, err := keys.Install(res.Path, pemBytes)
	if err != nil {
		return res, fmt.Errorf("restore the edge signing key: %w", err)
	}
	res.Restored, res.Replaced = true, replaced
	return res, nil
}
