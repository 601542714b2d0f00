package edged

import (
	"crypto/ed25519"
	"fmt"
	"os"

	"github.com/keel-relay/keel/internal/edkey"
)

// maxKeyFile bounds what a key file may hold.
const maxKeyFile = edkey.MaxPEM

// LoadKey reads and parses a key file.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	b, err := readBounded(path, maxKeyFile)
	if err != nil {
		return nil, err
	}
	k, err := edkey.ParsePrivate(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than %d", path, st.Size(), limit)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}
