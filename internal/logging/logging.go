// Package logging builds the one *slog.Logger of a Keel binary (keel-relay, keel-agent) from
// the level and format of its config's log section: text or JSON records, at a level a
// reload may change. Under systemd, when the output is the journal's stream (JOURNAL_STREAM),
// each record starts with its syslog priority (<3> error, <4> warn, <6> info, <7> debug) and
// carries no time: journald stamps and filters it (journalctl -p warning).
package logging

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// ParseLevel maps a log.level value (debug, info, warn or error, in any case) to a slog
// level: info when unknown (both configs refuse unknown values before this is reached).
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// New returns the logger writing to w at level (see ParseLevel), as JSON when format is
// "json" and as text otherwise; the returned LevelVar lets a reload change the level. When w
// is the journal's stream (Journal with the process's environment), records carry the
// priority prefix and no time.
func New(level, format string, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	return newLogger(level, format, w, Journal(w, os.Getenv))
}

func newLogger(level, format string, w io.Writer, journal bool) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(ParseLevel(level))
	opts := &slog.HandlerOptions{Level: lv}
	var pw *prefixWriter
	if journal {
		opts.ReplaceAttr = dropTime
		pw = &prefixWriter{w: w}
		w = pw
	}
	var h slog.Handler
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	if journal {
		h = &journalHandler{h: h, pw: pw, mu: new(sync.Mutex)}
	}
	return slog.New(h), lv
}

// Priority is the syslog priority journald files a record of level under: 3 (err) from
// error up, 4 (warning) from warn, 6 (info) from info, 7 (debug) below.
func Priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	default:
		return 7
	}
}

// dropTime removes the record's time: journald has its own.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// journalHandler puts the priority prefix of each record's level in front of the line the
// handler h writes (through pw). mu, shared by the handlers WithAttrs and WithGroup derive,
// keeps the prefix and its record together.
type journalHandler struct {
	h  slog.Handler
	pw *prefixWriter
	mu *sync.Mutex
}

func (j *journalHandler) Enabled(ctx context.Context, l slog.Level) bool { return j.h.Enabled(ctx, l) }

func (j *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.pw.prefix = [...]byte{'<', byte('0' + Priority(r.Level)), '>'}
	return j.h.Handle(ctx, r)
}

func (j *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{h: j.h.WithAttrs(as), pw: j.pw, mu: j.mu}
}

func (j *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{h: j.h.WithGroup(name), pw: j.pw, mu: j.mu}
}

// prefixWriter writes prefix and each record (slog's handlers write a record in one Write) in
// one Write, so that journald gets them as one line.
type prefixWriter struct {
	w      io.Writer
	prefix [3]byte
	buf    bytes.Buffer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf.Reset()
	p.buf.Write(p.prefix[:])
	p.buf.Write(b)
	if _, err := p.w.Write(p.buf.Bytes()); err != nil {
		return 0, err
	}
	if p.buf.Cap() > 64<<10 {
		p.buf = bytes.Buffer{} // a huge record once does not keep its buffer for good
	}
	return len(b), nil
}
