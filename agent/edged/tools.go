package edged

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/internal/cmdtemplate"
	"github.com/keel-relay/keel/internal/procgroup"
	"github.com/keel-relay/keel/internal/wire/classlist"
)

// Limits on tool invocations.
const (
	// ChunkSize bounds one CommandProgress chunk of output.
	ChunkSize = 16 << 10
	// MaxClasses bounds the classes of one agent-run.
	MaxClasses = 256
	// MaxShellCommand bounds a shell tool's command string.
	MaxShellCommand = 64 << 10
	// DefaultDeadline applies to an InvokeTool without a deadline.
	DefaultDeadline = time.Hour
	// MaxDeadline bounds any deadline.
	MaxDeadline = 24 * time.Hour
)

// Structured error codes of EdgeResult.Err.
const (
	CodeUnknownTool  = "unknown-tool"
	CodeToolDisabled = "tool-disabled"
	CodeBadArgs      = "bad-args"
	CodeDraining     = "draining"
	CodeBusy         = "busy"
	CodeExecFailed   = "exec-failed"
)

// toolError is a refusal with a structured code.
type toolError struct{ code, msg string }

func (e *toolError) Error() string { return e.code + ": " + e.msg }

func refuse(code, format string, args ...any) *toolError {
	return &toolError{code: code, msg: fmt.Sprintf(format, args...)}
}

// resolveTool returns the argv that runs tool with args under the tools config.
func resolveTool(tools config.ToolsConfig, tool string, args *structpb.Struct) ([]string, *toolError) {
	fields := args.GetFields()
	switch tool {
	case ToolAgentRun:
		if len(tools.AgentRun.Command) == 0 {
			return nil, refuse(CodeToolDisabled, "agent-run has no command configured")
		}
		for k := range fields {
			if k != "classes" {
				return nil, refuse(CodeBadArgs, "agent-run: unknown argument %q (only classes)", k)
			}
		}
		classes, err := parseClasses(fields["classes"])
		if err != nil {
			return nil, refuse(CodeBadArgs, "agent-run: classes: %v", err)
		}
		// {classes} is the only placeholder of edge.tools.agent_run.command; the rule is
		// keel-relay's remote_run.command's: with no classes, [rudder, agent, run, -D,
		// {classes}] becomes [rudder, agent, run].
		return cmdtemplate.Expand(tools.AgentRun.Command, map[string]string{cmdtemplate.Classes: strings.Join(classes, ",")}), nil
	case ToolShell:
		if !tools.Shell.Enabled {
			return nil, refuse(CodeToolDisabled, "the shell tool is disabled on this node (edge.tools.shell.enabled)")
		}
		for k := range fields {
			if k != "command" {
				return nil, refuse(CodeBadArgs, "shell: unknown argument %q (only command)", k)
			}
		}
		cmd := fields["command"].GetStringValue()
		switch {
		case fields["command"] == nil:
			return nil, refuse(CodeBadArgs, "shell: no command argument")
		case fields["command"].GetKind() == nil:
			return nil, refuse(CodeBadArgs, "shell: command has no value")
		case cmd == "":
			if _, ok := fields["command"].GetKind().(*structpb.Value_StringValue); !ok {
				return nil, refuse(CodeBadArgs, "shell: command must be a string")
			}
			return nil, refuse(CodeBadArgs, "shell: command is empty")
		case len(cmd) > MaxShellCommand:
			return nil, refuse(CodeBadArgs, "shell: command is %d bytes, more than %d", len(cmd), MaxShellCommand)
		case strings.IndexByte(cmd, 0) >= 0:
			return nil, refuse(CodeBadArgs, "shell: command contains a NUL byte")
		}
		return shellArgv(cmd), nil
	}
	return nil, refuse(CodeUnknownTool, "no tool %q on this node", tool)
}

// parseClasses reads the classes argument: absent or null (none), a comma-separated
// string, or a list of strings. Each class follows classlist's grammar, as the relay's
// remote run checks it.
func parseClasses(v *structpb.Value) ([]string, error) {
	var raw []string
	switch x := v.GetKind().(type) {
	case nil, *structpb.Value_NullValue:
		return nil, nil
	case *structpb.Value_StringValue:
		raw = strings.Split(x.StringValue, ",")
	case *structpb.Value_ListValue:
		for i, item := range x.ListValue.GetValues() {
			s, ok := item.GetKind().(*structpb.Value_StringValue)
			if !ok {
				return nil, fmt.Errorf("item %d is not a string", i)
			}
			raw = append(raw, s.StringValue)
		}
	default:
		return nil, errors.New("want a string or a list of strings")
	}
	classes, err := classlist.Clean(raw)
	if err != nil {
		return nil, err
	}
	if len(classes) > MaxClasses {
		return nil, fmt.Errorf("more than %d classes", MaxClasses)
	}
	return classes, nil
}

// runProcess runs argv with procgroup.Run: in its own process group, killed whole when ctx
// ends or the command exits. It returns the exit status (128+signal when a signal ended
// it) and an error only when the command could not be started.
func runProcess(ctx context.Context, argv []string, stdout, stderr io.Writer) (int, error) {
	st, err := procgroup.Run(ctx, argv, stdout, stderr)
	return st.Code, err
}

// chunkWriter turns a tool's output into chunks of at most ChunkSize bytes handed to
// emit, which may block (the send queue is bounded) and fails once the tool is over.
type chunkWriter struct {
	emit func(data []byte) error
}

func (w chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := p[:min(len(p), ChunkSize)]
		if err := w.emit(append([]byte(nil), c...)); err != nil {
			return n, err
		}
		n += len(c)
		p = p[len(c):]
	}
	return n, nil
}
