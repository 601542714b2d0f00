package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestParseLevel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want slog.Level
	}{
		{"debug", slog.LevelDebug},
		{"info", slog.LevelInfo},
		{"warn", slog.LevelWarn},
		{"error", slog.LevelError},
		{"DEBUG", slog.LevelDebug},
		{"Warn", slog.LevelWarn},
		// Bad input: info (the configs refuse it before).
		{"", slog.LevelInfo},
		{"warning", slog.LevelInfo},
		{"info+2", slog.LevelInfo},
		{" debug", slog.LevelInfo},
		{"trace", slog.LevelInfo},
		{"\x00", slog.LevelInfo},
	} {
		if got := ParseLevel(tc.in); got != tc.want {
			t.Errorf("ParseLevel(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func FuzzParseLevel(f *testing.F) {
	for _, s := range []string{"debug", "info", "warn", "error", "", "WARN", "warning", "info+2", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		switch got := ParseLevel(s); got {
		case slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError:
		default:
			t.Fatalf("ParseLevel(%q) = %v: not one of the four levels", s, got)
		}
	})
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name, level, format string
		json                bool
		debugShown          bool
	}{
		{"text at info", "info", "text", false, false},
		{"text at debug", "debug", "text", false, true},
		{"json at warn", "warn", "json", true, false},
		{"json at debug", "debug", "json", true, true},
		{"unknown format is text", "info", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, lv := New(tc.level, tc.format, &buf)
			if lv.Level() != ParseLevel(tc.level) {
				t.Fatalf("level %v, want %v", lv.Level(), ParseLevel(tc.level))
			}
			log.Debug("quiet")
			log.Error("loud", "k", "v")
			out := buf.String()
			if got := strings.Contains(out, "quiet"); got != tc.debugShown {
				t.Errorf("debug record shown: %v, want %v\n%s", got, tc.debugShown, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			last := lines[len(lines)-1]
			if tc.json {
				var rec map[string]any
				if err := json.Unmarshal([]byte(last), &rec); err != nil || rec["msg"] != "loud" || rec["k"] != "v" {
					t.Errorf("not a JSON record: %q (%v)", last, err)
				}
			} else if !strings.Contains(last, "level=ERROR msg=loud k=v") {
				t.Errorf("not a text record: %q", last)
			}
			// A reload changes the level through the LevelVar.
			buf.Reset()
			lv.Set(slog.LevelDebug)
			log.Debug("now shown")
			if !strings.Contains(buf.String(), "now shown") {
				t.Errorf("after lv.Set(debug), the debug record is missing")
			}
		})
	}
}
