package remoterun

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keel-relay/keel/internal/procgroup"
	"github.com/keel-relay/keel/internal/wire/runoutput"
)

// runCommand runs argv for node with a deadline, sending its stdout lines, prefixed with the
// node id, to out. The command runs with procgroup: in its own process group, killed whole
// on the deadline or cancellation, so nothing it started outlives it.
func runCommand(ctx context.Context, node string, argv []string, timeout time.Duration, out func([]byte)) runoutput.Result {
	start := time.Now()
	res := runoutput.Result{Node: node, ExitCode: runoutput.NoExitCode}
	if len(argv) == 0 || argv[0] == "" {
		res.Stderr = "keel-relay: remote_run.command names no program\n"
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stderr runoutput.Tail
	stdout := runoutput.NewLineSplitter(node, out)
	st, err := procgroup.Run(ctx, argv, stdout, &stderr)
	stdout.Flush()
	res.DurationMS = time.Since(start).Milliseconds()
	if err != nil {
		res.Stderr = err.Error() + "\n"
		if ctx.Err() != nil {
			res.Stderr = "keel-relay: run cancelled before it started: " + context.Cause(ctx).Error() + "\n"
		}
		return res
	}
	res.Stderr = stderr.String()
	res.ExitCode, res.Stderr = exitOutcome(ctx, st, timeout, res.Stderr)
	return res
}

// exitOutcome is the exit code of a command that ran and the stderr of its result: a
// command that exited has its code; one killed at the deadline or on cancellation has
// none (NoExitCode) and a line saying why; one whose output was cut has none either;
// one killed by a signal from elsewhere has 128+signal, and a line naming the signal.
func exitOutcome(ctx context.Context, st procgroup.Status, timeout time.Duration, stderr string) (int, string) {
	switch {
	case st.Signal == nil && st.Err == nil:
		return st.Code, stderr
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return runoutput.NoExitCode, stderr + fmt.Sprintf("keel-relay: run cut at its deadline of %s\n", timeout)
	case ctx.Err() != nil:
		return runoutput.NoExitCode, stderr + "keel-relay: run cancelled: " + context.Cause(ctx).Error() + "\n"
	case st.Err != nil:
		return runoutput.NoExitCode, stderr + fmt.Sprintf("keel-relay: %v\n", st.Err)
	default:
		return st.Code, stderr + fmt.Sprintf("keel-relay: signal: %v\n", st.Signal)
	}
}
