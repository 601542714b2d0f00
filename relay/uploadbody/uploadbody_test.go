package uploadbody

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"too large", fmt.Errorf("copy: %w", &http.MaxBytesError{Limit: 10}), 413, "body exceeds the limit of 10 bytes"},
		{"too slow", fmt.Errorf("%w (3 bytes in 1s): %w", errTooSlow, os.ErrDeadlineExceeded), 408, "upload too slow"},
		{"stalled", ReadError{os.ErrDeadlineExceeded}, 408, "upload stalled"},
		{"broken", ReadError{io.ErrUnexpectedEOF}, 400, "reading the body failed: unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := Status(tc.err, 10)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Errorf("%d %q, want %d %q", code, msg, tc.code, tc.msg)
			}
		})
	}
}

func TestIsNoSpace(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("write: %w", syscall.ENOSPC), true},
		{errors.New("badger: write /data/000001.vlog: no space left on device"), true},
		{errors.New("permission denied"), false},
	} {
		if got := IsNoSpace(tc.err); got != tc.want {
			t.Errorf("IsNoSpace(%v) = %v", tc.err, got)
		}
	}
}

func TestSourceTagsReadErrors(t *testing.T) {
	if _, err := (Source{R: strings.NewReader("")}).Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("end of body: %v, want io.EOF as it is", err)
	}
	_, err := (Source{R: io.MultiReader(errReader{})}).Read(make([]byte, 1))
	if !errors.As(err, new(ReadError)) || !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("read error: %v, want a ReadError wrapping it", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrClosedPipe }
