// Package procgroup runs a command in its own process group and kills the whole group when
// the run ends, so nothing it started outlives it. It is the one runner of both the relay's
// remote_run.command and keel-agent's edge tools.
//
// Exit codes follow the shell's convention: a process ended by signal n reports 128+n
// (137 for SIGKILL), so a caller always has an exit code once the process ran.
package procgroup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// WaitDelay is how long the output pipes held by a command's descendants may stay open
// after the command exits or is killed; then they are closed and the run ends.
const WaitDelay = 2 * time.Second

// ErrNoProgram is the error of a run with an empty argv.
var ErrNoProgram = errors.New("no program to run")

// Status is how a command ended.
type Status struct {
	// Code is its exit status, or 128+n when signal n ended it (as a shell's $? says).
	Code int
	// Signal is the signal that ended it; nil when it exited (always nil off Unix).
	Signal os.Signal
	// Err is a failure of the run other than the exit status: its output was cut
	// (exec.ErrWaitDelay) or a writer of its output failed. Its exit status is still known.
	Err error
}

// Run runs argv in its own process group, writing its output to stdout and stderr as it
// comes. When ctx ends the whole group is killed; once the command has exited, what is
// left of its group is killed too. It returns an error only when the command could not be
// started ("cannot run <argv[0]>: ...", or ErrNoProgram).
func Run(ctx context.Context, argv []string, stdout, stderr io.Writer) (Status, error) {
	if len(argv) == 0 || argv[0] == "" {
		return Status{}, ErrNoProgram
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	setGroup(cmd)
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = WaitDelay
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return Status{}, fmt.Errorf("cannot run %s: %w", argv[0], err)
	}
	waitErr := cmd.Wait()
	_ = killGroup(cmd) // a run never leaves orphans
	st := status(cmd.ProcessState)
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		st.Err = waitErr
	}
	return st, nil
}
