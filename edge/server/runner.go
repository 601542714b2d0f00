package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keel-relay/keel/edge/registry"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/runoutput"
)

// Runner returns the agent runner of this server, for the relay's remote run.
func (s *Server) Runner() AgentRunner { return AgentRunner{s} }

// AgentRunner runs the agent of a node over its live edge stream. Its RunAgent has the
// relay's remote-run EdgeRunner method, so the relay hands it to its remote run as is.
type AgentRunner struct{ s *Server }

// RunAgent runs tool agent-run with the classes on the node over its live stream; ok is
// false when the node has none (the remote-run command is used then). Stdout is passed on
// line by line (without a prefix, cut at runoutput.MaxLine); the tail of stderr is kept;
// the exit code comes from Ok or Err, and a run that timed out or was cancelled has none.
func (r AgentRunner) RunAgent(ctx context.Context, node string, classes []string, out func(line []byte)) (runoutput.Result, bool) {
	s := r.s
	if _, ok := s.reg.Get(node); !ok {
		return runoutput.Result{}, false
	}
	list := make([]any, len(classes))
	for i, c := range classes {
		list[i] = c
	}
	args, err := structpb.NewStruct(map[string]any{"classes": list})
	if err != nil {
		return runoutput.Result{Node: node, ExitCode: runoutput.NoExitCode, Stderr: err.Error()}, true
	}
	deadline := s.opts.AgentRunTimeout
	if d, ok := ctx.Deadline(); ok {
		deadline = min(deadline, time.Until(d))
	}
	start := time.Now()
	lines := &runoutput.LineSplitter{Out: out}
	var stderr runoutput.Tail
	res, err := s.disp.Invoke(ctx, node, AgentRunTool, args, deadline, func(ch *edgepb.Chunk) {
		switch k := ch.GetKind().(type) {
		case *edgepb.Chunk_Stdout:
			_, _ = lines.Write(k.Stdout)
		case *edgepb.Chunk_Stderr:
			_, _ = stderr.Write(k.Stderr)
		}
	})
	lines.Flush()
	if errors.Is(err, registry.ErrNotConnected) {
		return runoutput.Result{}, false // gone between the check and the send
	}
	result := runoutput.Result{Node: node, ExitCode: runoutput.NoExitCode, DurationMS: time.Since(start).Milliseconds(), Stderr: stderr.String()}
	if err != nil {
		result.Stderr += fmt.Sprintf("keel-relay: edge run failed: %v\n", err)
		return result, true
	}
	result.ExitCode = runoutput.EdgeExitCode(res)
	result.Stderr += outcomeNote(res, deadline)
	return result, true
}

// outcomeNote is the stderr line that says why an edge run has no plain exit code ("" for
// Ok).
func outcomeNote(res *edgepb.EdgeResult, deadline time.Duration) string {
	switch o := res.GetOutcome().(type) {
	case *edgepb.EdgeResult_Ok_:
		return ""
	case *edgepb.EdgeResult_Err_:
		return fmt.Sprintf("keel-agent: %s: %s\n", o.Err.GetCode(), o.Err.GetMessage())
	case *edgepb.EdgeResult_TimedOut_:
		return fmt.Sprintf("keel-relay: edge run cut at its deadline of %s\n", deadline.Round(time.Millisecond))
	case *edgepb.EdgeResult_Cancelled_:
		return fmt.Sprintf("keel-relay: edge run cancelled: %s\n", o.Cancelled.GetReason())
	default:
		return "keel-relay: edge run ended with no outcome\n"
	}
}
