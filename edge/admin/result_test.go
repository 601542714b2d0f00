package admin

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/keel-relay/keel/edge/dispatch"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/runoutput"
)

// TestResultLineBounded: whatever a daemon sends as its error message and stderr, the result
// line fits the line a client reads, and stays valid UTF-8.
func TestResultLineBounded(t *testing.T) {
	huge := strings.Repeat("\x01é", 1<<20) // escapes to \u0001, and a 2-byte character
	stderr := strings.Repeat("\x01", runoutput.MaxStderr)
	for name, ev := range map[string]dispatch.FleetEvent{
		"daemon error": {Node: "n", Result: &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Err_{Err: &edgepb.EdgeResult_Err{Code: "tool_failed", Message: huge}}}},
		"cancelled":    {Node: "n", Result: &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Cancelled_{Cancelled: &edgepb.EdgeResult_Cancelled{Reason: huge}}}},
		"relay error":  {Node: "n", Err: errors.New(huge)},
	} {
		r := result(ev, stderr, time.Second)
		line := r.Line()
		if len(line) > runoutput.MaxStreamLine {
			t.Errorf("%s: result line of %d bytes, over %d", name, len(line), runoutput.MaxStreamLine)
		}
		if !utf8.ValidString(r.Error) || !strings.HasSuffix(r.Error, " [...]") || len(r.Error) > maxError+len(" [...]") {
			t.Errorf("%s: error of %d bytes not cut as expected: ...%q", name, len(r.Error), r.Error[max(0, len(r.Error)-20):])
		}
	}
	if got := capError("short"); got != "short" {
		t.Errorf("capError(short) = %q", got)
	}
}
