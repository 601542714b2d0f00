package remoterun

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"
)

// runCommand runs argv for node with a deadline, sending its stdout lines to out. The command
// runs in its own process group, killed whole on the deadline or cancellation, so nothing it
// started outlives it.
func runCommand(ctx context.Context, node string, argv []string, timeout time.Duration, out func([]byte)) Result {
	start := time.Now()
	res := Result{Node: node, ExitCode: NoExitCode}
	if len(argv) == 0 || argv[0] == "" {
		res.Stderr = "keel-relay: remote_run.command names no program\n"
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	setProcessGroup(cmd)
	cmd.Cancel = func() error { return killProcessGroup(cmd) }
	cmd.WaitDelay = 2 * time.Second // a grandchild holding the pipes cannot stall us
	stderr := &tail{max: maxStderr}
	stdout := &lineSplitter{prefix: node + ":", out: out}
	cmd.Stderr, cmd.Stdout = stderr, stdout
	if err := cmd.Start(); err != nil {
		res.Stderr = fmt.Sprintf("cannot run %s: %v\n", argv[0], err)
		if ctx.Err() != nil {
			res.Stderr = "keel-relay: run cancelled before it started: " + context.Cause(ctx).Error() + "\n"
		}
		res.DurationMS = time.Since(start).Milliseconds()
		return res
	}
	waitErr := cmd.Wait()
	// What the command left running in its group is killed too: a run never leaves orphans.
	_ = killProcessGroup(cmd)
	stdout.Flush()
	res.DurationMS = time.Since(start).Milliseconds()
	res.Stderr = stderr.String()
	var exitErr *exec.ExitError
	switch {
	case waitErr == nil:
		res.ExitCode = 0
	case errors.As(waitErr, &exitErr) && exitErr.ExitCode() >= 0:
		res.ExitCode = exitErr.ExitCode()
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.Stderr += fmt.Sprintf("keel-relay: run cut at its deadline of %s\n", timeout)
	case ctx.Err() != nil:
		res.Stderr += "keel-relay: run cancelled: " + context.Cause(ctx).Error() + "\n"
	default:
		res.Stderr += fmt.Sprintf("keel-relay: %v\n", waitErr)
	}
	return res
}
