package edged

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// result wraps an outcome as a CommandResult event.
func result(id string, r *edgepb.EdgeResult) *edgepb.EdgeEvent {
	return &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandResult{CommandResult: &edgepb.CommandResult{CommandId: id, Result: r}}}
}

// okResult: the tool ran and exited with code after dur.
func okResult(code int, dur time.Duration) *edgepb.EdgeResult {
	return &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Ok_{Ok: &edgepb.EdgeResult_Ok{ExitCode: int32(code), Duration: durationpb.New(dur)}}}
}

// errResult: the tool was refused or could not run; code is one of the Code constants.
func errResult(code, msg string) *edgepb.EdgeResult {
	return &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Err_{Err: &edgepb.EdgeResult_Err{Code: code, Message: msg}}}
}

// interrupted is the result of a tool whose context ended: TimedOut or Cancelled.
func interrupted(ctx context.Context, deadline time.Duration) *edgepb.EdgeResult {
	cause := context.Cause(ctx)
	if errors.Is(cause, errDeadline) {
		return &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_TimedOut_{TimedOut: &edgepb.EdgeResult_TimedOut{Deadline: durationpb.New(deadline)}}}
	}
	reason := "agent stopping"
	var cc *cancelCause
	if errors.As(cause, &cc) {
		reason = cc.reason
	}
	return &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Cancelled_{Cancelled: &edgepb.EdgeResult_Cancelled{Reason: reason}}}
}

// outcomeName names a result for the log.
func outcomeName(r *edgepb.EdgeResult) string {
	switch o := r.GetOutcome().(type) {
	case *edgepb.EdgeResult_Ok_:
		return fmt.Sprintf("ok (exit %d)", o.Ok.GetExitCode())
	case *edgepb.EdgeResult_Err_:
		return "err " + o.Err.GetCode()
	case *edgepb.EdgeResult_TimedOut_:
		return "timed out"
	case *edgepb.EdgeResult_Cancelled_:
		return "cancelled: " + o.Cancelled.GetReason()
	}
	return "none"
}
