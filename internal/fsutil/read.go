package fsutil

import (
	"fmt"
	"io"
	"os"
)

// ReadFileMax returns the content of the file at path when it holds at most max bytes;
// a larger file is an error. An error opening the file is os.Open's, so errors.Is(err,
// fs.ErrNotExist) tells a missing file.
func ReadFileMax(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAllMax(f, path, max)
}

// ReadAllMax reads r, the content of the file named name, to its end when it holds at most
// max bytes; more is an error.
func ReadAllMax(r io.Reader, name string, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, max)
	}
	return b, nil
}
