//go:build unix

package procgroup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunExitStatus(t *testing.T) {
	tests := []struct {
		name   string
		script string
		code   int
		signal os.Signal
		stdout string
		stderr string
	}{
		{"success", "echo out; echo err >&2", 0, nil, "out\n", "err\n"},
		{"exit code", "exit 3", 3, nil, "", ""},
		{"exit 137 is not a signal", "exit 137", 137, nil, "", ""},
		{"killed", "kill -KILL $$", 128 + 9, syscall.SIGKILL, "", ""},
		{"terminated", "echo before; kill -TERM $$", 128 + 15, syscall.SIGTERM, "before\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			st, err := Run(context.Background(), []string{"/bin/sh", "-c", tt.script}, &out, &errOut)
			if err != nil {
				t.Fatal(err)
			}
			if st.Code != tt.code || st.Signal != tt.signal || st.Err != nil {
				t.Errorf("status = %+v, want code %d signal %v", st, tt.code, tt.signal)
			}
			if out.String() != tt.stdout || errOut.String() != tt.stderr {
				t.Errorf("output %q %q, want %q %q", out.String(), errOut.String(), tt.stdout, tt.stderr)
			}
		})
	}
}

func TestRunCannotStart(t *testing.T) {
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{"no argv", nil, ErrNoProgram.Error()},
		{"empty program", []string{"", "x"}, ErrNoProgram.Error()},
		{"missing program", []string{"/nonexistent/prog"}, "cannot run /nonexistent/prog: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), tt.argv, nil, nil)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Run(%q) error = %v, want %q", tt.argv, err, tt.want)
			}
		})
	}
}

// TestRunKillsGroup checks that a run whose context ends, and a run that exits leaving a
// child behind, both leave no process of their group alive.
func TestRunKillsGroup(t *testing.T) {
	tests := []struct {
		name   string
		script string // writes the pid of a background child to $1
		cancel bool
	}{
		{"context ends", `sleep 60 & echo $! > "$1"; wait`, true},
		{"command exits", `sleep 60 >/dev/null 2>&1 & echo $! > "$1"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				go func() {
					waitFile(t, pidFile)
					cancel()
				}()
			}
			start := time.Now()
			st, err := Run(ctx, []string{"/bin/sh", "-c", tt.script, "sh", pidFile}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if time.Since(start) > 20*time.Second {
				t.Fatalf("run took %s", time.Since(start))
			}
			if tt.cancel && st.Signal != syscall.SIGKILL {
				t.Errorf("cancelled run: %+v, want killed", st)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(waitFile(t, pidFile)))
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for alive(pid) {
				if time.Now().After(deadline) {
					t.Fatalf("child %d still alive", pid)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestRunOutputHeldOpen checks that a descendant holding the output open cannot stall the
// run past WaitDelay, and that the cut is reported beside the exit status.
func TestRunOutputHeldOpen(t *testing.T) {
	var out bytes.Buffer
	start := time.Now()
	st, err := Run(context.Background(), []string{"/bin/sh", "-c", "sleep 60 & echo hi"}, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > WaitDelay+5*time.Second {
		t.Errorf("run took %s", took)
	}
	if st.Code != 0 || !errors.Is(st.Err, exec.ErrWaitDelay) || out.String() != "hi\n" {
		t.Errorf("status %+v, output %q; want exit 0 with ErrWaitDelay and hi", st, out.String())
	}
}

func waitFile(t *testing.T, path string) string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Errorf("no pid in %s", path)
			return "0"
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether process pid still runs: a zombie waiting for its reaper (the child
// was reparented to init, which may be slow to reap) is dead.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no procfs here: trust kill
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
