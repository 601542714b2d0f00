package edged

import (
	"context"
	"errors"
	"time"
)

// errFinished: the daemon was told to stop and has flushed its stream.
var errFinished = errors.New("edge daemon stopped")

// stopRequest asks the daemon to stop after its tools finish, or after grace.
type stopRequest struct {
	grace   time.Duration // <0: no limit (Drain)
	reason  string
	abandon bool // the relay ended the stream: give up a Drain (not a Shutdown)
}

// requestStop asks the coordinator to stop after grace (<0: when idle, a Drain).
func (d *Daemon) requestStop(grace time.Duration, reason string) {
	d.sendStop(stopRequest{grace: grace, reason: reason})
}

// sendStop hands r to the coordinator, unless it is done.
func (d *Daemon) sendStop(r stopRequest) {
	select {
	case d.stopReq <- r:
	case <-d.finish: // the coordinator is done
	case <-d.life.Done():
	}
}

// finished reports whether the daemon was told to stop and its tools are done.
func (d *Daemon) finished() bool {
	select {
	case <-d.finish:
		return true
	default:
		return false
	}
}

// setStopping sets whether new work is refused and returns how many tools run.
func (d *Daemon) setStopping(v bool) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopping = v
	return len(d.jobs)
}

// coordinator turns stop requests (Drain, Shutdown, ctx ending) into a stop: it refuses
// new work, waits for the tools to finish, cancels them when the grace ends, and then
// closes d.finish.
//
// A Drain is also what a relay sends every stream when it stops gracefully, so it does
// not end the daemon when the relay ends the stream itself: once idle the daemon waits
// DrainLinger with the stream open; if the relay closes the stream first (it is
// restarting), the drain is abandoned and the daemon reconnects; else the daemon closes
// the stream and Run returns.
func (d *Daemon) coordinator(ctx context.Context) {
	s := &stopState{d: d, drainOnly: true}
	defer s.stopTimers()
	ctxDone := ctx.Done()
	for {
		select {
		case <-ctxDone:
			ctxDone = nil
			s.apply(stopRequest{grace: 0, reason: "agent stopping"})
		case r := <-d.stopReq:
			s.apply(r)
		case <-s.deadlineC:
			s.graceOver()
		case <-s.flushC:
			d.log.Warn("edge: tools still running after being cancelled; closing anyway")
			close(d.finish)
			return
		case <-s.lingerC:
			if s.lingerOver() {
				close(d.finish)
				return
			}
		case <-d.jobEnded:
		case <-d.life.Done():
			return
		}
		if s.complete() {
			close(d.finish)
			return
		}
	}
}

// stopState is the coordinator's view of the stop under way, if any.
type stopState struct {
	d         *Daemon
	stopping  bool
	drainOnly bool // every request of this stop was a Drain
	cancelled bool // the grace ended and the tools were cancelled
	reason    string

	deadline   *time.Timer // the end of the shortest grace asked for
	deadlineAt time.Time
	deadlineC  <-chan time.Time
	flushC     <-chan time.Time // after the tools were cancelled: the last wait
	linger     *time.Timer      // a drained, idle daemon keeps its stream this long
	lingerC    <-chan time.Time
}

// apply takes one stop request into the stop under way.
func (s *stopState) apply(r stopRequest) {
	if r.abandon {
		s.abandonDrain()
		return
	}
	if r.grace >= 0 {
		s.drainOnly = false
	}
	s.begin(r)
	s.armDeadline(r)
}

// abandonDrain gives up a stop that only Drains asked for: the relay ended the stream,
// so it is restarting and the daemon reconnects.
func (s *stopState) abandonDrain() {
	if !s.stopping || !s.drainOnly {
		return
	}
	s.stopping = false
	s.stopTimers()
	s.d.setStopping(false)
	s.d.log.Info("edge: the relay ended the stream during a drain (it is restarting): drain abandoned, reconnecting")
}

// begin starts refusing new work, if that has not started yet.
func (s *stopState) begin(r stopRequest) {
	if s.stopping {
		return
	}
	s.stopping, s.reason = true, r.reason
	n := s.d.setStopping(true)
	s.d.log.Info("edge: stopping: refusing new work", "reason", r.reason, "in_flight", n, "grace", r.grace)
}

// armDeadline sets the grace deadline to r's when r has one that ends sooner.
func (s *stopState) armDeadline(r stopRequest) {
	at := time.Now().Add(r.grace)
	if r.grace < 0 || s.cancelled || (s.deadline != nil && !at.Before(s.deadlineAt)) {
		return
	}
	if s.deadline != nil {
		s.deadline.Stop()
	}
	s.deadline, s.deadlineAt, s.reason = time.NewTimer(r.grace), at, r.reason
	s.deadlineC = s.deadline.C
}

// graceOver cancels the tools still running and gives their results StopFlush to go out.
func (s *stopState) graceOver() {
	s.deadlineC = nil
	s.cancelled = true
	s.d.cancelAll(s.reason + ": grace period over")
	s.flushC = time.After(s.d.opts.StopFlush)
}

// lingerOver reports whether a drain is still idle when its linger ends: then the
// daemon closes the stream.
func (s *stopState) lingerOver() bool {
	s.lingerC = nil
	if s.stopping && s.drainOnly && s.d.running() == 0 {
		s.d.log.Info("edge: drained and idle; closing the stream", "reason", s.reason)
		return true
	}
	return false
}

// complete is checked after every event: it reports whether a Shutdown (or ctx ending)
// has no tool left to wait for. A Drain that is idle starts its linger instead.
func (s *stopState) complete() bool {
	if !s.stopping || s.d.running() != 0 {
		return false
	}
	if !s.drainOnly {
		s.d.log.Info("edge: idle; closing the stream", "reason", s.reason)
		return true
	}
	if s.linger == nil {
		s.linger = time.NewTimer(s.d.opts.DrainLinger)
		s.lingerC = s.linger.C
	}
	return false
}

// stopTimers stops the deadline and the linger.
func (s *stopState) stopTimers() {
	if s.deadline != nil {
		s.deadline.Stop()
		s.deadline, s.deadlineC = nil, nil
	}
	if s.linger != nil {
		s.linger.Stop()
		s.linger, s.lingerC = nil, nil
	}
}
