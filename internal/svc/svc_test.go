package svc

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/kardianos/service"
)

// fakeLogger records what a LogWriter sends, prefixed by its level.
type fakeLogger struct {
	mu    sync.Mutex
	lines []string
}

func (f *fakeLogger) add(level string, v []any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lines = append(f.lines, level+" "+fmt.Sprint(v...))
	return nil
}
func (f *fakeLogger) Error(v ...any) error              { return f.add("E", v) }
func (f *fakeLogger) Warning(v ...any) error            { return f.add("W", v) }
func (f *fakeLogger) Info(v ...any) error               { return f.add("I", v) }
func (f *fakeLogger) Errorf(s string, a ...any) error   { return f.Error(fmt.Sprintf(s, a...)) }
func (f *fakeLogger) Warningf(s string, a ...any) error { return f.Warning(fmt.Sprintf(s, a...)) }
func (f *fakeLogger) Infof(s string, a ...any) error    { return f.Info(fmt.Sprintf(s, a...)) }

func TestLogWriter(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		f := &fakeLogger{}
		opts := &slog.HandlerOptions{Level: slog.LevelDebug}
		var h slog.Handler = slog.NewTextHandler(LogWriter{f}, opts)
		if format == "json" {
			h = slog.NewJSONHandler(LogWriter{f}, opts)
		}
		log := slog.New(h)
		log.Debug("d")
		log.Info("i", "msg2", "level=ERROR")
		log.Warn("w")
		log.Error("e")
		var got []string
		for _, l := range f.lines {
			got = append(got, l[:1])
			if strings.HasSuffix(l, "\n") {
				t.Errorf("%s: record sent with its newline: %q", format, l)
			}
		}
		if strings.Join(got, "") != "IIWE" {
			t.Errorf("%s: levels %v, want I I W E; lines %q", format, got, f.lines)
		}
	}
}

func TestRecordLevel(t *testing.T) {
	for _, tc := range []struct{ rec, want string }{
		{`time=2024-01-01T00:00:00Z level=WARN msg=x`, "WARN"},
		{`time=2024-01-01T00:00:00Z level=ERROR msg="level=INFO"`, "ERROR"},
		{`{"time":"2024-01-01T00:00:00Z","level":"INFO","msg":"level=ERROR"}`, "INFO"},
		{`level=DEBUG`, "DEBUG"},
		{`no level here`, ""},
		{`level=`, ""},
		{``, ""},
	} {
		if got := RecordLevel(tc.rec); got != tc.want {
			t.Errorf("RecordLevel(%q) = %q, want %q", tc.rec, got, tc.want)
		}
	}
}

func FuzzRecordLevel(f *testing.F) {
	for _, s := range []string{`time=x level=INFO msg=a`, `{"time":"x","level":"ERROR"}`, `level=`, `"level":"`, ``, "level=WARN\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rec string) {
		got := RecordLevel(rec)
		if strings.ContainsAny(got, ` "`) || !strings.Contains(rec, got) {
			t.Fatalf("RecordLevel(%q) = %q", rec, got)
		}
	})
}

func TestOptions(t *testing.T) {
	o := Options()
	if o["Restart"] != "on-failure" || o["OnFailure"] != "restart" || o["LimitNOFILE"] != 65536 {
		t.Errorf("Options() = %v", o)
	}
	o["Restart"] = "no"
	if Options()["Restart"] != "on-failure" {
		t.Error("Options() shares its map between calls")
	}
}

func TestPackaged(t *testing.T) {
	if p := packagedUnit("keel-no-such-unit-for-tests"); p != "" {
		t.Errorf("packagedUnit = %q, want none", p)
	}
	for _, action := range []string{"install", "uninstall", "run", "status"} {
		if err := Packaged("keel-no-such-unit-for-tests", action); err != nil {
			t.Errorf("Packaged(%s): %v", action, err)
		}
	}
}

// noop is a service program that does nothing.
type noop struct{}

func (noop) Start(service.Service) error { return nil }
func (noop) Stop(service.Service) error  { return nil }

// TestDoStatusNotInstalled asks this machine's real service manager about a service
// that is not installed: "not installed" (exit 3), or where the manager cannot tell,
// its error under the program's name (exit 1).
func TestDoStatusNotInstalled(t *testing.T) {
	s, err := service.New(noop{}, &service.Config{Name: "keel-svc-test-not-installed"})
	if err != nil {
		t.Skipf("no service manager here: %v", err)
	}
	var stdout, stderr bytes.Buffer
	var logOut io.Writer = &stderr
	switch code := Do(s, "keel-test", "status", &stdout, &stderr, &logOut); {
	case code == 3 && stdout.String() == "not installed\n":
	case code == 1 && strings.HasPrefix(stderr.String(), "keel-test service status: "):
	default:
		t.Errorf("status: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}
