package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// frame returns one backup record: its length and payload.
func frame(payload string) string {
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(len(payload)))
	return string(hdr[:]) + payload
}

func header(size uint64) string {
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], size)
	return string(hdr[:])
}

func TestFrameChecker(t *testing.T) {
	tests := []struct {
		name, in string
		err      string // "" = passes through unchanged
	}{
		{"empty", "", ""},
		{"one record", frame("hello"), ""},
		{"records", frame("a") + frame("") + frame(strings.Repeat("x", 100000)), ""},
		{"largest record header", header(maxBackupFrame) + "", "bytes of a record missing"},
		{"record too large", header(maxBackupFrame + 1), "a record of 1073741825 bytes (at most 1073741824)"},
		{"negative as int", header(^uint64(0)), "not a keel-relay backup"},
		{"text file", "this is not a backup at all\n", "not a keel-relay backup"},
		{"short header", "\x05\x00\x00", "a record header has 3 of 8 bytes"},
		{"short payload", header(10) + "12345", "5 bytes of a record missing"},
		{"bad second record", frame("ok") + header(1<<40), "not a keel-relay backup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte at a time exercises every boundary.
			out, err := io.ReadAll(iotest.OneByteReader(&frameChecker{r: strings.NewReader(tt.in)}))
			if tt.err == "" {
				if err != nil || string(out) != tt.in {
					t.Fatalf("got %d bytes, %v; want the %d input bytes", len(out), err, len(tt.in))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.err)
			}
			if !strings.HasPrefix(tt.in, string(out)) {
				t.Fatalf("passed on bytes that are not the input's")
			}
		})
	}
}

func TestRestoreRefusesNonBackup(t *testing.T) {
	s := openTest(t, t.TempDir())
	k := FileKey{"t", "s", "kept"}
	putFile(t, s, k, []byte("kept"), time.Now().Add(time.Hour))
	for _, tt := range []struct {
		name, in, err string
	}{
		{"empty", "", "the backup is empty"},
		{"garbage", "\xff\xff\xff\xff\xff\xff\xff\xffgarbage", "not a keel-relay backup"},
		{"text", "hello, world\n", "not a keel-relay backup"},
	} {
		// With replace: nothing is dropped for input that is not a backup.
		err := s.Restore(strings.NewReader(tt.in), true)
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.err)
		}
	}
	if got := readFile(t, s, k); !bytes.Equal(got, []byte("kept")) {
		t.Fatalf("data after refused restores: %q", got)
	}
}

func FuzzFrameChecker(f *testing.F) {
	f.Add([]byte(frame("hello") + frame("")))
	f.Add([]byte(header(maxBackupFrame + 1)))
	f.Add([]byte("\x05\x00\x00"))
	f.Add([]byte(header(3) + "ab"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := io.ReadAll(&frameChecker{r: bytes.NewReader(in)})
		if !bytes.HasPrefix(in, out) {
			t.Fatalf("output is not a prefix of the input")
		}
		if err == nil && !bytes.Equal(in, out) {
			t.Fatalf("no error but %d of %d bytes passed on", len(out), len(in))
		}
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "not a keel-relay backup") {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
