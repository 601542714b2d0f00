package relay

import (
	"io"
	"log/slog"
	"strings"

	"github.com/keel-relay/keel/relay/config"
)

// ParseLevel maps a log.level value to a slog level (info when unknown; Validate refuses
// unknown values before this is reached).
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

// NewLogger builds the daemon's one logger from the log section; the returned LevelVar lets a
// reload change the level.
func NewLogger(c config.LogConfig, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(ParseLevel(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), level
	}
	return slog.New(slog.NewTextHandler(w, opts)), level
}
