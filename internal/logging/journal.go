package logging

import (
	"io"
	"os"
	"strconv"
	"strings"
)

// Journal reports whether w is the stream systemd connected to the journal: w is a file and
// env's JOURNAL_STREAM ("DEVICE:INODE", decimal) names that file's device and inode, as
// systemd.exec(5) advises checking (a child process that inherits JOURNAL_STREAM with its
// output redirected elsewhere keeps plain lines).
func Journal(w io.Writer, env func(string) string) bool {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false
	}
	dev, ino, ok := ParseJournalStream(env("JOURNAL_STREAM"))
	if !ok {
		return false
	}
	fdev, fino, ok := fileID(f)
	return ok && fdev == dev && fino == ino
}

// ParseJournalStream parses a JOURNAL_STREAM value, "DEVICE:INODE" in decimal.
func ParseJournalStream(v string) (dev, ino uint64, ok bool) {
	d, i, found := strings.Cut(v, ":")
	if !found {
		return 0, 0, false
	}
	dev, err1 := strconv.ParseUint(d, 10, 64)
	ino, err2 := strconv.ParseUint(i, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return dev, ino, true
}
