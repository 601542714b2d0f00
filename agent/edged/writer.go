package edged

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/envelope"
)

// streamWriter is the one goroutine that sends on a stream.
type streamWriter struct {
	d      *Daemon
	stream edgeStream
	id     string
	last   time.Time
}

// send seals ev with the current credentials and sends it. Timestamps never go back on
// a stream, even if the clock does.
func (s *streamWriter) send(ev *edgepb.EdgeEvent) error {
	s.d.credMu.RLock()
	defer s.d.credMu.RUnlock()
	c := s.d.creds
	now := time.Now()
	if now.Before(s.last) {
		now = s.last
	}
	s.last = now
	if err := envelope.Seal(c.Key, c.Token, c.NodeID, s.id, now, ev); err != nil {
		return err
	}
	return s.stream.Send(ev)
}

// run sends heartbeats, capability updates and queued events until the stream fails or
// the daemon stops; then it sends what is queued and closes its side (errFinished). An
// event the previous stream failed to send goes first.
func (s *streamWriter) run(ctx context.Context) error {
	d := s.d
	if ev := d.resend; ev != nil {
		if err := s.send(ev); err != nil {
			return err
		}
		d.resend = nil
	}
	hb := time.NewTicker(d.heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-hb.C:
			if err := s.sendHeartbeat(); err != nil {
				return err
			}
		case <-d.capsChanged:
			if err := s.sendCapabilities(); err != nil {
				return err
			}
		case ev := <-d.out:
			if err := s.send(ev); err != nil {
				d.resend = ev // the next stream sends it
				return err
			}
		case <-d.finish:
			return s.finish()
		}
	}
}

// sendHeartbeat sends a Heartbeat.
func (s *streamWriter) sendHeartbeat() error {
	ev := &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_Heartbeat{Heartbeat: &edgepb.Heartbeat{SentAt: timestamppb.Now()}}}
	if err := s.send(ev); err != nil {
		return fmt.Errorf("send Heartbeat: %w", err)
	}
	return nil
}

// sendCapabilities sends the capabilities the daemon declares now (CapabilityUpdate).
func (s *streamWriter) sendCapabilities() error {
	caps := s.d.capabilities()
	ev := &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_CapabilityUpdate{CapabilityUpdate: &edgepb.CapabilityUpdate{Capabilities: caps}}}
	if err := s.send(ev); err != nil {
		return fmt.Errorf("send CapabilityUpdate: %w", err)
	}
	s.d.log.Info("edge: capabilities sent", "tools", caps.GetLocalTools())
	return nil
}

// finish sends the events still queued and closes the daemon's side of the stream; it
// returns errFinished when all went.
func (s *streamWriter) finish() error {
	for {
		select {
		case ev := <-s.d.out:
			if err := s.send(ev); err != nil {
				return err
			}
		default:
			if err := s.stream.CloseSend(); err != nil {
				return err
			}
			return errFinished
		}
	}
}
