package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keel-relay/keel/edge/registry"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/relay/remoterun"
)

// maxStderr bounds the stderr kept for a remote-run result (its end is kept).
const maxStderr = 64 << 10

// Runner returns the remote-run EdgeRunner of this server.
func (s *Server) Runner() remoterun.EdgeRunner { return runner{s} }

type runner struct{ s *Server }

// RunAgent runs tool agent-run with the classes on the node over its live stream; ok is
// false when the node has none (the remote-run command is used then). Stdout is passed on
// line by line; the exit code comes from Ok or Err, and a run that timed out or was
// cancelled has none.
func (r runner) RunAgent(ctx context.Context, node string, classes []string, out func(line []byte)) (remoterun.Result, bool) {
	s := r.s
	if _, ok := s.reg.Get(node); !ok {
		return remoterun.Result{}, false
	}
	list := make([]any, len(classes))
	for i, c := range classes {
		list[i] = c
	}
	args, err := structpb.NewStruct(map[string]any{"classes": list})
	if err != nil {
		return remoterun.Result{Node: node, ExitCode: remoterun.NoExitCode, Stderr: err.Error()}, true
	}
	deadline := s.opts.AgentRunTimeout
	if d, ok := ctx.Deadline(); ok {
		deadline = min(deadline, time.Until(d))
	}
	start := time.Now()
	lines := &lineWriter{out: out}
	var stderr []byte
	res, err := s.disp.Invoke(ctx, node, AgentRunTool, args, deadline, func(ch *edgepb.Chunk) {
		switch k := ch.GetKind().(type) {
		case *edgepb.Chunk_Stdout:
			lines.write(k.Stdout)
		case *edgepb.Chunk_Stderr:
			stderr = append(stderr, k.Stderr...)
			if len(stderr) > maxStderr {
				stderr = stderr[len(stderr)-maxStderr:]
			}
		}
	})
	lines.flush()
	if errors.Is(err, registry.ErrNotConnected) {
		return remoterun.Result{}, false // gone between the check and the send
	}
	result := remoterun.Result{Node: node, ExitCode: remoterun.NoExitCode, DurationMS: time.Since(start).Milliseconds(), Stderr: string(stderr)}
	switch {
	case err != nil:
		result.Stderr += fmt.Sprintf("keel-relay: edge run failed: %v\n", err)
	case res.GetOk() != nil:
		result.ExitCode = int(res.GetOk().GetExitCode())
	case res.GetErr() != nil:
		e := res.GetErr()
		result.ExitCode = int(e.GetExitCode())
		result.Stderr += fmt.Sprintf("keel-agent: %s: %s\n", e.GetCode(), e.GetMessage())
	case res.GetTimedOut() != nil:
		result.Stderr += fmt.Sprintf("keel-relay: edge run cut at its deadline of %s\n", deadline.Round(time.Millisecond))
	case res.GetCancelled() != nil:
		result.Stderr += fmt.Sprintf("keel-relay: edge run cancelled: %s\n", res.GetCancelled().GetReason())
	default:
		result.Stderr += "keel-relay: edge run ended with no outcome\n"
	}
	return result, true
}

// lineWriter splits stdout chunks into lines ending in '\n' (long lines are cut at
// remoterun.MaxLine).
type lineWriter struct {
	out func([]byte)
	buf []byte
}

func (l *lineWriter) write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := remoterun.MaxLine - len(l.buf)
			if len(p) < room {
				l.buf = append(l.buf, p...)
				return
			}
			l.buf = append(l.buf, p[:room]...)
			p = p[room:]
			l.emit()
			continue
		}
		l.buf = append(l.buf, p[:i]...)
		p = p[i+1:]
		l.emit()
	}
}

func (l *lineWriter) emit() {
	line := append(l.buf, '\n')
	l.out(line)
	l.buf = l.buf[:0:0]
}

func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		l.emit()
	}
}
