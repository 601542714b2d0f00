package runoutput

import "github.com/keel-relay/keel/internal/wire/edgepb"

// EdgeExitCode is the exit code a result line gives an edge tool's result: Ok's exit code;
// Err's when it carries one (not 0), else NoExitCode — a refused tool (unknown, disabled,
// bad arguments, busy, draining) or one that could not start never ran, so it has none;
// NoExitCode too for a run that timed out, was cancelled or has no outcome.
func EdgeExitCode(r *edgepb.EdgeResult) int {
	switch o := r.GetOutcome().(type) {
	case *edgepb.EdgeResult_Ok_:
		return int(o.Ok.GetExitCode())
	case *edgepb.EdgeResult_Err_:
		if c := o.Err.GetExitCode(); c != 0 {
			return int(c)
		}
	}
	return NoExitCode
}
