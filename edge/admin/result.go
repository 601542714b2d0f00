package admin

import (
	"time"
	"unicode/utf8"

	"github.com/keel-relay/keel/edge/dispatch"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/runoutput"
)

// Result is one node's outcome, sent as one JSON line after its output: remote run's
// result line (runoutput.Result, whose fields come first), plus the outcome and the error
// when there is one. A node that produced no exit code has runoutput.NoExitCode.
type Result struct {
	runoutput.Result
	Outcome string `json:"outcome"` // ok, err, timed_out, cancelled, no_outcome, error
	Error   string `json:"error,omitempty"`
}

// Line returns the result as a JSON line (runoutput.JSONLine).
func (r Result) Line() []byte { return runoutput.JSONLine(r) }

// Failed reports whether the node did not run the tool to a zero exit code.
func (r Result) Failed() bool { return r.ExitCode != 0 || r.Error != "" }

// result builds a node's result line from its fleet end event.
func result(ev dispatch.FleetEvent, stderr string, elapsed time.Duration) Result {
	r := Result{Result: runoutput.Result{Node: ev.Node, ExitCode: runoutput.NoExitCode, DurationMS: elapsed.Milliseconds(), Stderr: stderr}}
	if ev.Err != nil {
		r.Outcome, r.Error = "error", capError(ev.Err.Error())
		return r
	}
	r.Outcome = dispatch.Outcome(ev.Result)
	r.ExitCode = runoutput.EdgeExitCode(ev.Result)
	switch o := ev.Result.GetOutcome().(type) {
	case *edgepb.EdgeResult_Ok_:
		if d := o.Ok.GetDuration(); d != nil {
			r.DurationMS = d.AsDuration().Milliseconds()
		}
	case *edgepb.EdgeResult_Err_:
		r.Error = o.Err.GetCode()
		if m := o.Err.GetMessage(); m != "" {
			r.Error += ": " + m
		}
		if r.Error == "" {
			r.Error = "failed"
		}
	case *edgepb.EdgeResult_TimedOut_:
		r.Error = "timed out after " + o.TimedOut.GetDeadline().AsDuration().String()
	case *edgepb.EdgeResult_Cancelled_:
		r.Error = "cancelled: " + o.Cancelled.GetReason()
	default:
		r.Error = "the daemon gave no outcome"
	}
	r.Error = capError(r.Error)
	return r
}

// maxError bounds the error of a result line. With the stderr tail (runoutput.MaxStderr),
// both JSON-escaped at worst 6 bytes a byte, the line stays within what a client reads
// (runoutput.MaxStreamLine) whatever the daemon sends.
const maxError = 4 << 10

// capError keeps the first maxError bytes of an error message, cut at a character
// boundary and marked " [...]".
func capError(msg string) string {
	if len(msg) <= maxError {
		return msg
	}
	cut := maxError
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + " [...]"
}
