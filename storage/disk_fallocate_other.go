//go:build !linux

package storage

import (
	"errors"
	"os"
)

// fallocate is not available here: the caller writes the bytes instead.
func fallocate(*os.File, int64) error { return errors.ErrUnsupported }
