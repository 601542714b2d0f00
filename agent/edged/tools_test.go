//go:build unix

package edged

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/internal/wire/classlist"
	"github.com/keel-relay/keel/internal/wire/edgepb"
)

func TestParseClasses(t *testing.T) {
	list := func(vs ...any) *structpb.Value {
		l, err := structpb.NewList(vs)
		if err != nil {
			t.Fatal(err)
		}
		return structpb.NewListValue(l)
	}
	for _, tc := range []struct {
		name string
		in   *structpb.Value
		want string // joined, or "error: ..."
	}{
		{"absent", nil, ""},
		{"null", structpb.NewNullValue(), ""},
		{"string", structpb.NewStringValue("a, b_1,,c"), "a,b_1,c"},
		{"list", list("x", "y"), "x,y"},
		{"number", structpb.NewNumberValue(1), "error: want a string or a list"},
		{"list of numbers", list("x", 2.0), "error: item 1 is not a string"},
		{"leading underscore", structpb.NewStringValue("_a"), "error: does not match ^[A-Za-z0-9][A-Za-z0-9_]*$"},
		{"space inside", structpb.NewStringValue("a b"), "error: does not match"},
		{"option injection", structpb.NewStringValue("-x"), "error: does not match"},
		{"shell meta", structpb.NewStringValue("a;rm"), "error: does not match"},
		{"too long", structpb.NewStringValue(strings.Repeat("a", classlist.MaxLen+1)), "error: characters long"},
		{"too many", structpb.NewStringValue(strings.Repeat("a,", MaxClasses+1)), "error: more than"},
	} {
		got, err := parseClasses(tc.in)
		s := strings.Join(got, ",")
		if err != nil {
			s = "error: " + err.Error()
		}
		if !strings.HasPrefix(tc.want, "error: ") && s != tc.want || strings.HasPrefix(tc.want, "error: ") && !strings.Contains(s, strings.TrimPrefix(tc.want, "error: ")) {
			t.Errorf("%s: %q, want %q", tc.name, s, tc.want)
		}
	}
}

func FuzzParseClasses(f *testing.F) {
	f.Add("a,b")
	f.Add(" x , _y ,")
	f.Add("-D")
	f.Fuzz(func(t *testing.T, s string) {
		classes, err := parseClasses(structpb.NewStringValue(s))
		if err != nil {
			return
		}
		for _, c := range classes {
			if classlist.Valid(c) != nil || strings.ContainsAny(c, ", \t\n-;") {
				t.Fatalf("accepted class %q", c)
			}
		}
	})
}

// unitDaemon is a Daemon without a stream: tests call invoke and handle and read d.out.
func unitDaemon(t *testing.T, mod func(*config.EdgeConfig)) *Daemon {
	t.Helper()
	cfg := config.Default()
	dir := t.TempDir()
	cfg.Edge.Relay = "127.0.0.1:1"
	cfg.Edge.KeyFile, cfg.Edge.TokenFile = filepath.Join(dir, "edge.key"), filepath.Join(dir, "token")
	script, err := filepath.Abs(filepath.Join("testdata", "fake-agent.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Edge.Tools.AgentRun.Command = []string{"/bin/sh", script, "lines", filepath.Join(dir, "marker"), "3", "-D", "{classes}"}
	if mod != nil {
		mod(&cfg.Edge)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, Options{SendQueue: 64}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	life, cancel := context.WithCancel(context.Background())
	d.life = life
	t.Cleanup(func() {
		cancel()
		d.cancelAll("test over")
		d.jobsWG.Wait()
	})
	return d
}

func invokeTool(id, tool string, args map[string]any, deadline time.Duration) *edgepb.InvokeTool {
	s, err := structpb.NewStruct(args)
	if err != nil {
		panic(err)
	}
	inv := &edgepb.InvokeTool{CommandId: id, ToolName: tool, Args: s}
	if deadline > 0 {
		inv.Deadline = durationpb.New(deadline)
	}
	return inv
}

// nextEvent returns the next queued event.
func nextEvent(t *testing.T, d *Daemon) *edgepb.EdgeEvent {
	t.Helper()
	select {
	case ev := <-d.out:
		return ev
	case <-time.After(20 * time.Second):
		t.Fatal("no event from the daemon")
		return nil
	}
}

// resultOf reads events until the result of id, returning the output before it.
func resultOf(t *testing.T, d *Daemon, id string) (stdout, stderr string, res *edgepb.EdgeResult) {
	t.Helper()
	var out, errOut bytes.Buffer
	for {
		ev := nextEvent(t, d)
		if p := ev.GetCommandProgress(); p != nil && p.GetCommandId() == id {
			if n := len(p.GetChunk().GetStdout()) + len(p.GetChunk().GetStderr()); n > ChunkSize || n == 0 {
				t.Errorf("chunk of %d bytes", n)
			}
			out.Write(p.GetChunk().GetStdout())
			errOut.Write(p.GetChunk().GetStderr())
		}
		if r := ev.GetCommandResult(); r != nil && r.GetCommandId() == id {
			return out.String(), errOut.String(), r.GetResult()
		}
	}
}

func TestToolOutputStreamsLive(t *testing.T) {
	d := unitDaemon(t, nil)
	marker := d.edge.Tools.AgentRun.Command[3]
	d.invoke(context.Background(), invokeTool("c1", ToolAgentRun, map[string]any{"classes": "a,b"}, 20*time.Second))
	// The first lines arrive while the tool still runs (it waits for the marker).
	var seen, seenErr bytes.Buffer
	for !strings.Contains(seen.String(), "line 1\n") || seenErr.String() != "to stderr\n" {
		ev := nextEvent(t, d)
		if ev.GetCommandResult() != nil {
			t.Fatalf("result before the marker: %v", ev)
		}
		seen.Write(ev.GetCommandProgress().GetChunk().GetStdout())
		seenErr.Write(ev.GetCommandProgress().GetChunk().GetStderr())
	}
	if !strings.HasPrefix(seen.String(), "start lines "+marker+" 3 -D a,b\n") {
		t.Errorf("argv: %q", seen.String())
	}
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, res := resultOf(t, d, "c1")
	if seen.String()+stdout != "start lines "+marker+" 3 -D a,b\nline 1\nline 2\n" || stderr != "" {
		t.Errorf("stdout %q, stderr after the first lines %q", seen.String()+stdout, stderr)
	}
	ok := res.GetOk()
	if ok == nil || ok.GetExitCode() != 3 || ok.GetDuration().AsDuration() <= 0 {
		t.Fatalf("result %v, want Ok exit 3", res)
	}
	// No classes: "-D {classes}" is dropped.
	d.invoke(context.Background(), invokeTool("c2", ToolAgentRun, nil, 20*time.Second))
	stdout, _, res = resultOf(t, d, "c2")
	if !strings.HasPrefix(stdout, "start lines "+marker+" 3\n") || res.GetOk().GetExitCode() != 3 {
		t.Errorf("no classes: %q %v", stdout, res)
	}
}

func TestToolStderrAndBigOutput(t *testing.T) {
	script, _ := filepath.Abs(filepath.Join("testdata", "fake-agent.sh"))
	d := unitDaemon(t, func(e *config.EdgeConfig) {
		e.Tools.AgentRun.Command = []string{"/bin/sh", script, "big", "100000"}
		e.Tools.Shell.Enabled = true
	})
	d.invoke(context.Background(), invokeTool("big", ToolAgentRun, nil, 20*time.Second))
	stdout, _, res := resultOf(t, d, "big")
	if want := "start big 100000\n" + strings.Repeat("x", 100000) + "\n"; stdout != want || res.GetOk().GetExitCode() != 0 {
		t.Errorf("big output: %d bytes, result %v", len(stdout), res)
	}
	d.invoke(context.Background(), invokeTool("sh", ToolShell, map[string]any{"command": "echo out; echo err >&2; exit 7"}, 20*time.Second))
	stdout, stderr, res := resultOf(t, d, "sh")
	if stdout != "out\n" || stderr != "err\n" || res.GetOk().GetExitCode() != 7 {
		t.Errorf("shell: %q %q %v", stdout, stderr, res)
	}
}

// readPids waits for the pid file of fake-agent.sh hang.
func readPids(t *testing.T, path string) []int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			var pids []int
			for _, f := range strings.Fields(string(b)) {
				n, err := strconv.Atoi(f)
				if err != nil {
					t.Fatal(err)
				}
				pids = append(pids, n)
			}
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatal("the tool never wrote its pids")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// assertGone checks that the processes (leader and grandchild) are gone, allowing a
// moment for the kernel to deliver SIGKILL.
func assertGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d survived its tool", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The whole group: nothing left that is not a zombie.
	leader := pids[len(pids)-1]
	if err := syscall.Kill(-leader, 0); err == nil {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || !alive(pid) {
				continue
			}
			if pgid, _ := syscall.Getpgid(pid); pgid == leader {
				t.Errorf("process %d of group %d survived", pid, leader)
			}
		}
	}
}

func TestToolDeadlineKillsGroup(t *testing.T) {
	script, _ := filepath.Abs(filepath.Join("testdata", "fake-agent.sh"))
	pidFile := filepath.Join(t.TempDir(), "pids")
	d := unitDaemon(t, func(e *config.EdgeConfig) { e.Tools.AgentRun.Command = []string{"/bin/sh", script, "hang", pidFile} })
	d.invoke(context.Background(), invokeTool("slow", ToolAgentRun, nil, 1500*time.Millisecond))
	pids := readPids(t, pidFile)
	start := time.Now()
	_, _, res := resultOf(t, d, "slow")
	if to := res.GetTimedOut(); to == nil || to.GetDeadline().AsDuration() != 1500*time.Millisecond {
		t.Fatalf("result %v, want TimedOut(1.5s)", res)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("result took %s after the pids", waited)
	}
	assertGone(t, pids)
}

func TestToolCancelKillsGroup(t *testing.T) {
	script, _ := filepath.Abs(filepath.Join("testdata", "fake-agent.sh"))
	pidFile := filepath.Join(t.TempDir(), "pids")
	d := unitDaemon(t, func(e *config.EdgeConfig) { e.Tools.AgentRun.Command = []string{"/bin/sh", script, "hang", pidFile} })
	d.invoke(context.Background(), invokeTool("c", ToolAgentRun, nil, time.Hour))
	pids := readPids(t, pidFile)
	d.handle(context.Background(), &edgepb.EdgeCommand{Command: &edgepb.EdgeCommand_Cancel{Cancel: &edgepb.Cancel{CommandId: "c", Reason: "operator said so"}}})
	_, _, res := resultOf(t, d, "c")
	if c := res.GetCancelled(); c == nil || c.GetReason() != "operator said so" {
		t.Fatalf("result %v, want Cancelled", res)
	}
	assertGone(t, pids)
	// A cancel for nothing is ignored.
	d.handle(context.Background(), &edgepb.EdgeCommand{Command: &edgepb.EdgeCommand_Cancel{Cancel: &edgepb.Cancel{CommandId: "nope"}}})
}

func TestToolRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, tool string
		args       map[string]any
		mod        func(*config.EdgeConfig)
		code       string
	}{
		{"unknown tool", "ssh", nil, nil, CodeUnknownTool},
		{"shell off", ToolShell, map[string]any{"command": "id"}, nil, CodeToolDisabled},
		{"shell no command", ToolShell, nil, func(e *config.EdgeConfig) { e.Tools.Shell.Enabled = true }, CodeBadArgs},
		{"shell empty command", ToolShell, map[string]any{"command": ""}, func(e *config.EdgeConfig) { e.Tools.Shell.Enabled = true }, CodeBadArgs},
		{"shell number", ToolShell, map[string]any{"command": 1}, func(e *config.EdgeConfig) { e.Tools.Shell.Enabled = true }, CodeBadArgs},
		{"shell extra arg", ToolShell, map[string]any{"command": "id", "user": "root"}, func(e *config.EdgeConfig) { e.Tools.Shell.Enabled = true }, CodeBadArgs},
		{"bad classes", ToolAgentRun, map[string]any{"classes": "a;b"}, nil, CodeBadArgs},
		{"unknown arg", ToolAgentRun, map[string]any{"nodes": "x"}, nil, CodeBadArgs},
		{"missing program", ToolAgentRun, nil, func(e *config.EdgeConfig) { e.Tools.AgentRun.Command = []string{"/nonexistent/rudder", "agent"} }, CodeExecFailed},
	} {
		d := unitDaemon(t, tc.mod)
		d.invoke(context.Background(), invokeTool("x", tc.tool, tc.args, 5*time.Second))
		_, _, res := resultOf(t, d, "x")
		if e := res.GetErr(); e == nil || e.GetCode() != tc.code || e.GetMessage() == "" {
			t.Errorf("%s: %v, want Err %s", tc.name, res, tc.code)
		}
	}
}

func TestToolDrainingAndBusy(t *testing.T) {
	script, _ := filepath.Abs(filepath.Join("testdata", "fake-agent.sh"))
	pidFile := filepath.Join(t.TempDir(), "pids")
	d := unitDaemon(t, func(e *config.EdgeConfig) {
		e.Tools.MaxConcurrent = 1
		e.Tools.AgentRun.Command = []string{"/bin/sh", script, "hang", pidFile}
	})
	d.invoke(context.Background(), invokeTool("first", ToolAgentRun, nil, time.Hour))
	readPids(t, pidFile)
	// With one slot, the second waits: it times out without ever starting.
	d.invoke(context.Background(), invokeTool("second", ToolAgentRun, nil, 300*time.Millisecond))
	out, _, res := resultOf(t, d, "second")
	if res.GetTimedOut() == nil || out != "" {
		t.Errorf("second: output %q result %v, want TimedOut without output", out, res)
	}
	// Waiting room: 16 × max_concurrent, then busy.
	for i := range maxWaitingFactor - 1 {
		d.invoke(context.Background(), invokeTool("w"+strconv.Itoa(i), ToolAgentRun, nil, time.Hour))
	}
	d.invoke(context.Background(), invokeTool("busy", ToolAgentRun, nil, time.Hour))
	if _, _, res := resultOf(t, d, "busy"); res.GetErr().GetCode() != CodeBusy {
		t.Errorf("17th: %v, want busy", res)
	}
	d.setStopping(true)
	d.invoke(context.Background(), invokeTool("late", ToolAgentRun, nil, time.Hour))
	if _, _, res := resultOf(t, d, "late"); res.GetErr().GetCode() != CodeDraining {
		t.Errorf("while draining: %v, want draining", res)
	}
}
