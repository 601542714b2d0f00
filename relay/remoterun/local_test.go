//go:build unix

package remoterun

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/runoutput"
)

// TestRunCommandOutcome runs real commands and checks each result line's exit code and
// the stderr line that says why a run has no plain one.
func TestRunCommandOutcome(t *testing.T) {
	sh := func(script string) []string { return []string{"/bin/sh", "-c", script} }
	cancelled, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("caller left"))
	tests := []struct {
		name    string
		ctx     context.Context
		argv    []string
		timeout time.Duration
		code    int
		stderr  string // its end
		lines   string
	}{
		{"success", nil, sh("echo a; echo b >&2"), time.Minute, 0, "b\n", "n1:a\n"},
		{"exit code", nil, sh("exit 3"), time.Minute, 3, "", ""},
		{"killed from elsewhere", nil, sh("echo x >&2; kill -KILL $$"), time.Minute, 137, "x\nkeel-relay: signal: killed\n", ""},
		{"deadline", nil, sh("echo started; exec sleep 30"), 200 * time.Millisecond, runoutput.NoExitCode, "keel-relay: run cut at its deadline of 200ms\n", "n1:started\n"},
		{"cancelled before start", cancelled, sh("exit 0"), time.Minute, runoutput.NoExitCode, "keel-relay: run cancelled before it started: caller left\n", ""},
		{"no program", nil, nil, time.Minute, runoutput.NoExitCode, "keel-relay: remote_run.command names no program\n", ""},
		{"missing program", nil, []string{"/nonexistent/rudder"}, time.Minute, runoutput.NoExitCode, "cannot run /nonexistent/rudder: ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			var lines strings.Builder
			res := runCommand(ctx, "n1", tt.argv, tt.timeout, func(l []byte) { lines.Write(l) })
			if res.Node != "n1" || res.ExitCode != tt.code || lines.String() != tt.lines {
				t.Errorf("result %+v, lines %q; want exit %d, lines %q", res, lines.String(), tt.code, tt.lines)
			}
			if !strings.HasSuffix(res.Stderr, tt.stderr) && !strings.HasPrefix(res.Stderr, tt.stderr) {
				t.Errorf("stderr %q, want it to end with %q", res.Stderr, tt.stderr)
			}
		})
	}
}
