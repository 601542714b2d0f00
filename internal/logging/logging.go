// Package logging builds the one *slog.Logger of a Keel binary (keel-relay, keel-agent) from
// the level and format of its config's log section: text or JSON records, at a level a
// reload may change.
package logging

import (
	"io"
	"log/slog"
	"strings"
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
// "json" and as text otherwise; the returned LevelVar lets a reload change the level.
func New(level, format string, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(ParseLevel(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), lv
	}
	return slog.New(slog.NewTextHandler(w, opts)), lv
}
