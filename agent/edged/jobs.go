package edged

import (
	"context"
	"errors"
	"time"

	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// maxWaitingFactor: at most this many times edge.tools.max_concurrent invocations may be
// running or waiting for a slot; beyond, InvokeTool is refused as busy.
const maxWaitingFactor = 16

// errDeadline is the cause of a tool's context when its deadline passes.
var errDeadline = errors.New("deadline passed")

// cancelCause is the cause of a tool's context when it is cancelled.
type cancelCause struct{ reason string }

func (c *cancelCause) Error() string { return "cancelled: " + c.reason }

// job is one InvokeTool being run.
type job struct {
	id     string
	tool   string
	cancel context.CancelCauseFunc
}

// stop cancels the job's tool for reason.
func (j *job) stop(reason string) { j.cancel(&cancelCause{reason: reason}) }

// invoke starts a tool (InvokeTool), or answers at once with a refusal. The tool's
// output and result go out as events through enqueue and the stream writer.
func (d *Daemon) invoke(ctx context.Context, inv *edgepb.InvokeTool) {
	id, tool := inv.GetCommandId(), inv.GetToolName()
	if id == "" {
		d.log.Warn("edge: InvokeTool without a command id; ignored", "tool", tool)
		return
	}
	d.mu.Lock()
	if _, dup := d.jobs[id]; dup {
		d.mu.Unlock()
		d.log.Warn("edge: InvokeTool for a command already running; ignored", "command_id", id)
		return
	}
	argv, refusal := d.admitLocked(inv)
	if refusal != nil {
		d.mu.Unlock()
		d.log.Info("edge: InvokeTool refused", "command_id", id, "tool", tool, "code", refusal.code, "reason", refusal.msg)
		d.enqueue(ctx, result(id, errResult(refusal.code, refusal.msg)))
		return
	}
	jctx, j := d.addJobLocked(id, tool)
	d.mu.Unlock()
	deadline := toolDeadline(inv)
	d.log.Info("edge: running tool", "command_id", id, "tool", tool, "argv", argv, "deadline", deadline,
		"user_tenant", inv.GetSealEnvelope().GetTenantId())
	go d.runJob(jctx, j, argv, deadline)
}

// admitLocked decides, under d.mu, whether inv may run now: it returns the argv to run
// or why not (draining, busy, or a tool or arguments the config does not allow).
func (d *Daemon) admitLocked(inv *edgepb.InvokeTool) ([]string, *toolError) {
	switch {
	case d.stopping:
		return nil, refuse(CodeDraining, "the daemon is draining; no new work")
	case len(d.jobs) >= cap(d.sem)*maxWaitingFactor:
		return nil, refuse(CodeBusy, "%d tools running or waiting, the most this node takes", len(d.jobs))
	}
	return resolveTool(d.edge.Tools, inv.GetToolName(), inv.GetArgs())
}

// addJobLocked registers a job under d.mu; its context lives with the daemon, not with
// the stream that asked for it.
func (d *Daemon) addJobLocked(id, tool string) (context.Context, *job) {
	jctx, cancel := context.WithCancelCause(d.life)
	j := &job{id: id, tool: tool, cancel: cancel}
	d.jobs[id] = j
	d.jobsWG.Add(1)
	return jctx, j
}

// toolDeadline is how long inv's tool may run: its deadline, DefaultDeadline when it
// has none, at most MaxDeadline.
func toolDeadline(inv *edgepb.InvokeTool) time.Duration {
	deadline := inv.GetDeadline().AsDuration()
	if deadline <= 0 {
		deadline = DefaultDeadline
	}
	return min(deadline, MaxDeadline)
}

// runJob runs one tool once a slot is free and sends its output and result.
func (d *Daemon) runJob(jctx context.Context, j *job, argv []string, deadline time.Duration) {
	defer d.endJob(j)
	ctx, cancel := context.WithTimeoutCause(jctx, deadline, errDeadline)
	defer cancel()
	var res *edgepb.EdgeResult
	select {
	case d.sem <- struct{}{}:
		res = d.execute(ctx, j, argv, deadline)
		<-d.sem
	case <-ctx.Done():
		res = interrupted(ctx, deadline)
	}
	d.log.Info("edge: tool done", "command_id", j.id, "tool", j.tool, "outcome", outcomeName(res))
	d.enqueue(d.life, result(j.id, res))
}

// endJob forgets a job that ended and tells the stop coordinator.
func (d *Daemon) endJob(j *job) {
	j.cancel(nil)
	d.mu.Lock()
	delete(d.jobs, j.id)
	d.mu.Unlock()
	signal(d.jobEnded)
	d.jobsWG.Done()
}

// execute runs argv for job j, streaming its output as CommandProgress.
func (d *Daemon) execute(ctx context.Context, j *job, argv []string, deadline time.Duration) *edgepb.EdgeResult {
	start := time.Now()
	code, err := runProcess(ctx, argv, d.progress(ctx, j.id, true), d.progress(ctx, j.id, false))
	dur := time.Since(start)
	switch {
	case ctx.Err() != nil:
		return interrupted(ctx, deadline)
	case err != nil:
		return errResult(CodeExecFailed, err.Error())
	}
	return okResult(code, dur)
}

// progress returns the writer of command id's stdout (or stderr): each chunk is queued
// as a CommandProgress, waiting while the queue is full; it fails once ctx ended.
func (d *Daemon) progress(ctx context.Context, id string, stdout bool) chunkWriter {
	return chunkWriter{emit: func(data []byte) error {
		ch := &edgepb.Chunk{Kind: &edgepb.Chunk_Stderr{Stderr: data}}
		if stdout {
			ch = &edgepb.Chunk{Kind: &edgepb.Chunk_Stdout{Stdout: data}}
		}
		ev := &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CommandProgress{CommandProgress: &edgepb.CommandProgress{CommandId: id, Chunk: ch}}}
		if !d.enqueue(ctx, ev) {
			return context.Cause(ctx)
		}
		return nil
	}}
}

// enqueue queues ev for the stream, waiting while the queue is full; false when ctx
// ended first.
func (d *Daemon) enqueue(ctx context.Context, ev *edgepb.EdgeEvent) bool {
	select {
	case d.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// cancelJob cancels the tool of command id (Cancel); a command not running is ignored.
func (d *Daemon) cancelJob(id, reason string) {
	d.mu.Lock()
	j := d.jobs[id]
	d.mu.Unlock()
	if j == nil {
		d.log.Debug("edge: cancel for a command not running", "command_id", id)
		return
	}
	d.log.Info("edge: cancelling", "command_id", j.id, "tool", j.tool, "reason", reason)
	j.stop(reason)
}

// cancelAll cancels every running tool.
func (d *Daemon) cancelAll(reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, j := range d.jobs {
		j.stop(reason)
	}
}

// running returns how many tools are running or waiting for a slot.
func (d *Daemon) running() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.jobs)
}
