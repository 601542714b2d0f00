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
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}
