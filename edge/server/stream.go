package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/keel-relay/keel/edge/registry"
	"github.com/keel-relay/keel/internal/wire/capabilities"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
	"github.com/keel-relay/keel/internal/wire/envelope"
	"github.com/keel-relay/keel/internal/wire/ids"
	"github.com/keel-relay/keel/storage"
)

// streamState is what one ConnectEdge stream has established. It is kept for the life of
// the stream, so it holds only what the checks of later messages need.
type streamState struct {
	node, tenant, streamID string
	since                  time.Time // when the bearer token was accepted
	lastTS                 time.Time // timestamp of the previous envelope
	// The last token that passed (first the bearer token, a substring of the metadata gRPC
	// keeps anyway), and the claims of it that later checks use (its sub and tid are node
	// and tenant).
	tokStr, tokID, tokJKT string
	tokExp                time.Time
}

// check is a failed stream check: reason is the metric label.
type check struct {
	reason string
	err    error
}

func (c *check) Error() string { return c.reason + ": " + c.err.Error() }
func (c *check) Unwrap() error { return c.err }

func fail(reason string, format string, args ...any) *check {
	return &check{reason: reason, err: fmt.Errorf(format, args...)}
}

// bearer checks the stream's authorization metadata and returns the authenticated node.
func (s *Server) bearer(ctx context.Context, now time.Time) (*streamState, *check) {
	tok, present, err := bearerToken(ctx)
	switch {
	case err != nil:
		return nil, &check{reason: "bearer", err: err}
	case !present:
		return nil, fail("bearer", "no authorization metadata (want \"Bearer <token>\")")
	}
	c, err := s.validateNodeToken(tok)
	if err != nil {
		return nil, &check{reason: "token", err: err}
	}
	st := &streamState{node: c.Subject, tenant: c.Tenant}
	listed, err := s.tokenBlacklisted(c.ID, c.Subject, time.Time{}, now, true)
	switch {
	case err != nil:
		return nil, &check{reason: "store", err: err}
	case listed:
		return nil, fail("blacklisted", "token %s is blacklisted", c.ID)
	}
	if chk := s.checkDaemon(st, c, now); chk != nil {
		return nil, chk
	}
	st.since = now
	// The envelopes carry the same token as a rule: checkEvent does not parse and verify it
	// again (it still checks its expiry, the blacklist, the daemon and the key).
	st.tokStr, st.tokID, st.tokJKT, st.tokExp = tok, c.ID, c.Confirmation, c.Expiry
	return st, nil
}

// checkDaemon checks that the token's daemon exists, is not revoked, has the token's tenant
// and holds the key the token is bound to; it returns that key's state.
func (s *Server) checkDaemon(st *streamState, c edgetoken.Claims, now time.Time) *check {
	k, err := s.daemonKeys(st.node)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return fail("unknown_daemon", "node %s is not enrolled", st.node)
	case err != nil:
		return &check{reason: "store", err: err}
	case k.revoked:
		return fail("revoked", "node %s is revoked", st.node)
	case k.tenant != c.Tenant || st.tenant != c.Tenant:
		return fail("tenant", "token tenant %q is not the daemon's", c.Tenant)
	}
	if _, ok := k.keyFor(c.Confirmation, now); !ok {
		return fail("key", "token is bound to a key the daemon does not hold (cnf.jkt %s)", c.Confirmation)
	}
	return nil
}

// envelopeOf returns the envelope of an event's message.
func envelopeOf(ev *edgepb.EdgeEvent) *edgepb.SealNodeEnvelope {
	switch e := ev.GetEvent().(type) {
	case *edgepb.EdgeEvent_Hello:
		return e.Hello.GetEnvelope()
	case *edgepb.EdgeEvent_Heartbeat:
		return e.Heartbeat.GetEnvelope()
	case *edgepb.EdgeEvent_CommandResult:
		return e.CommandResult.GetEnvelope()
	case *edgepb.EdgeEvent_CommandProgress:
		return e.CommandProgress.GetEnvelope()
	case *edgepb.EdgeEvent_CapabilityUpdate:
		return e.CapabilityUpdate.GetEnvelope()
	}
	return nil
}

// checkEvent verifies one event's envelope against the stream's state: the token inside it
// (signature, expiry, blacklist, sub, tenant), the key it is bound to, the signature under
// that key, kind and inner (envelope.Open), node id, stream id and timestamp.
func (s *Server) checkEvent(st *streamState, ev *edgepb.EdgeEvent, now time.Time) *check {
	env := envelopeOf(ev)
	if env == nil {
		return fail("malformed", "message has no envelope")
	}
	// A token already accepted on this stream is not parsed and verified again; its expiry,
	// the blacklist, the daemon and the key are.
	c := edgetoken.Claims{Subject: st.node, Tenant: st.tenant, ID: st.tokID, Confirmation: st.tokJKT, Expiry: st.tokExp}
	fresh := env.GetNodeSecurityToken() != st.tokStr
	if fresh {
		var err error
		if c, err = s.validateNodeToken(env.GetNodeSecurityToken()); err != nil {
			return &check{reason: "token", err: err}
		}
	} else if !now.Before(c.Expiry) {
		return fail("token", "envelope token expired at %s", c.Expiry.Format(time.RFC3339))
	}
	if c.Subject != st.node {
		return fail("node_mismatch", "envelope token is for node %s, the stream for %s", c.Subject, st.node)
	}
	listed, err := s.tokenBlacklisted(c.ID, st.node, st.since, now, fresh)
	switch {
	case err != nil:
		return &check{reason: "store", err: err}
	case listed:
		return fail("blacklisted", "envelope token %s is blacklisted", c.ID)
	}
	if chk := s.checkDaemon(st, c, now); chk != nil {
		return chk
	}
	k, err := s.daemonKeys(st.node)
	if err != nil {
		return &check{reason: "store", err: err}
	}
	key, _ := k.keyFor(c.Confirmation, now)
	p, _, err := envelope.Open(ev, key)
	if err != nil {
		reason := "malformed"
		switch {
		case errors.Is(err, envelope.ErrSignature):
			reason = "signature"
		case errors.Is(err, envelope.ErrKind):
			reason = "kind"
		case errors.Is(err, envelope.ErrInnerMismatch):
			reason = "inner"
		}
		return &check{reason: reason, err: err}
	}
	switch {
	case p.NodeID != st.node:
		return fail("node_mismatch", "envelope node id %q is not the stream's %q", p.NodeID, st.node)
	case p.StreamID != st.streamID:
		return fail("stream_mismatch", "envelope stream id %q is not the Hello's %q", p.StreamID, st.streamID)
	case p.Timestamp.Before(now.Add(-s.opts.ClockSkew)) || p.Timestamp.After(now.Add(s.opts.ClockSkew)):
		return fail("timestamp", "envelope timestamp %s is more than %s from the relay clock", p.Timestamp.UTC().Format(time.RFC3339Nano), s.opts.ClockSkew)
	case p.Timestamp.Before(st.lastTS):
		return fail("timestamp", "envelope timestamp %s is older than the previous message's", p.Timestamp.UTC().Format(time.RFC3339Nano))
	}
	st.lastTS = p.Timestamp
	if fresh {
		st.tokStr, st.tokID, st.tokJKT, st.tokExp = env.GetNodeSecurityToken(), c.ID, c.Confirmation, c.Expiry
	}
	return nil
}

// writerWait bounds how long a closing stream waits for its writer (blocked in a send to a
// daemon that does not read) before returning anyway; returning cancels the send.
const writerWait = 2 * time.Second

// edgeStream is one ConnectEdge call. Two goroutines serve it: the gRPC handler, which only
// waits for the stream to end (closed by the relay, cancelled, or ended by the reader) and
// returns its status; and the reader, which checks the bearer token, receives and verifies
// the Hello, registers the stream and then receives, verifies and acts on every event. The
// stream's commands are sent by the registry's writer, started while commands are queued.
// Keeping the handler's work shallow keeps its goroutine stack small while the stream idles.
type edgeStream struct {
	s      *Server
	stream edgepb.NodeClusterService_ConnectEdgeServer
	// opened carries two hand-offs from the reader: the first (unbuffered, so the handler is
	// still there to take it) when the reader has the stream's first message or a refusal;
	// then the outcome of the Hello, nil when the stream is registered (st and reg are set).
	opened chan error
	// ended gets, once, why the reader stopped after the stream was registered.
	ended chan error
	// st is set by the reader once the bearer token is accepted (its node is then fixed).
	st  atomic.Pointer[streamState]
	reg *registry.Stream
}

// ConnectEdge serves a daemon's stream: bearer token, then a Hello within hello_timeout
// (counted from the stream's start), then verified events in, commands out.
func (s *Server) ConnectEdge(stream edgepb.NodeClusterService_ConnectEdgeServer) error {
	ctx := stream.Context()
	es := &edgeStream{s: s, stream: stream, opened: make(chan error), ended: make(chan error, 1)}
	go es.read(ctx)

	// The Hello.
	timer := time.NewTimer(s.opts.HelloTimeout)
	select {
	case err := <-es.opened:
		timer.Stop()
		if err != nil {
			return err
		}
	case <-timer.C:
		var attrs []any
		if st := es.st.Load(); st != nil {
			attrs = []any{"node", st.node}
		}
		return s.refuse(codes.InvalidArgument, "no_hello", fmt.Sprintf("no Hello within %s", s.opts.HelloTimeout), attrs...)
	case <-ctx.Done():
		timer.Stop()
		return status.FromContextError(ctx.Err()).Err()
	}
	if err := <-es.opened; err != nil {
		return err
	}

	// Until the stream ends.
	var reason error
	select {
	case <-es.reg.Done():
		reason = closeStatus(es.reg.Reason())
	case <-ctx.Done():
		reason = status.FromContextError(ctx.Err()).Err()
	case reason = <-es.ended:
	}
	es.close(reason)
	return reason
}

// close deregisters the stream and waits (boundedly) for its writer.
func (es *edgeStream) close(reason error) {
	s, st, reg := es.s, es.st.Load(), es.reg
	if s.reg.Deregister(reg, reason) {
		s.disp.NodeDown(st.node)
	}
	wctx, cancel := context.WithTimeout(context.Background(), writerWait)
	defer cancel()
	if !reg.WaitWriter(wctx) {
		s.log.Warn("edge stream writer still blocked at close", "node", st.node, "stream", st.streamID)
	}
	if n := reg.Queued(); n > 0 {
		s.log.Debug("commands dropped at stream close", "node", st.node, "stream", st.streamID, "count", n)
	}
	s.log.Info("edge stream closed", "node", st.node, "stream", st.streamID, "reason", reason)
}

// read is the reader goroutine. It stops when the stream ends: Recv fails once the handler
// has returned.
func (es *edgeStream) read(ctx context.Context) {
	s := es.s
	st, chk := s.bearer(ctx, s.now())
	var first *edgepb.EdgeEvent
	var err error
	if chk != nil {
		err = s.refuse(codes.Unauthenticated, chk.reason, chk.err.Error())
	} else {
		es.st.Store(st)
		first, err = es.stream.Recv()
	}
	select {
	case es.opened <- err:
	case <-ctx.Done(): // the handler has returned (no Hello in time) or is returning
		return
	}
	if err != nil {
		return
	}
	err = es.hello(ctx, st, first)
	es.opened <- err
	if err != nil {
		return
	}
	es.ended <- es.serve(ctx)
}

// hello checks the stream's first message and registers the stream.
func (es *edgeStream) hello(ctx context.Context, st *streamState, first *edgepb.EdgeEvent) error {
	s := es.s
	hello := first.GetHello()
	if hello == nil {
		return s.refuse(codes.InvalidArgument, "not_hello", "the first message must be a Hello", "node", st.node)
	}
	if ids.ValidUUID("stream id", hello.GetStreamId()) != nil {
		return s.refuse(codes.InvalidArgument, "malformed", "Hello.stream_id must be a UUID", "node", st.node)
	}
	st.streamID = hello.GetStreamId()
	if chk := s.checkEvent(st, first, s.now()); chk != nil {
		return s.refuse(codes.Unauthenticated, chk.reason, chk.err.Error(), "node", st.node)
	}
	if err := capabilities.Check(hello.GetCapabilities()); err != nil {
		return s.refuse(codes.InvalidArgument, "capabilities", "Hello: "+err.Error(), "node", st.node)
	}
	if s.draining.Load() {
		return errShutdown
	}
	if s.opts.Pressure != nil && s.opts.Pressure.Near() {
		if _, live := s.reg.Get(st.node); !live { // a replacement adds nothing
			return s.refuse(codes.ResourceExhausted, "memory", "the relay is near its memory budget; retry later", "node", st.node)
		}
	}
	reg, replaced, err := s.reg.Register(st.node, st.streamID, s.now())
	if err != nil {
		if errors.Is(err, registry.ErrTooMany) {
			return s.refuse(codes.ResourceExhausted, "too_many_streams", "the relay holds its maximum number of streams", "node", st.node)
		}
		return status.Error(codes.Internal, err.Error())
	}
	if s.draining.Load() { // Shutdown began between the check above and the registration
		s.reg.Deregister(reg, errShutdown)
		return errShutdown
	}
	if replaced != nil {
		s.log.Info("edge stream replaced by a newer one", "node", st.node, "old_stream", replaced.StreamID, "stream", st.streamID)
	}
	s.log.Info("edge stream connected", "node", st.node, "stream", st.streamID)
	s.m.messages.With("hello").Inc()
	s.seen.Touch(st.node, s.now())
	s.noteCaps(st.node, hello.GetCapabilities())
	es.reg = reg
	// The stream's writer runs only while commands are queued (see registry.Stream).
	reg.Attach(es.stream.Send)
	return nil
}

// serve receives and handles the events after the Hello until the stream ends or an event
// fails its checks; it returns the status the stream ends with. Once the stream is closed
// from the relay's side, events still arriving are not acted on.
func (es *edgeStream) serve(ctx context.Context) error {
	s, st, reg := es.s, es.st.Load(), es.reg
	for {
		ev, err := es.stream.Recv()
		if err != nil {
			if status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) || isEOF(err) {
				return nil
			}
			return err
		}
		select {
		case <-reg.Done():
			return closeStatus(reg.Reason())
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		default:
		}
		now := s.now()
		if ev.GetHello() != nil {
			return s.refuse(codes.Unauthenticated, "second_hello", "a second Hello on the stream", "node", st.node)
		}
		if chk := s.checkEvent(st, ev, now); chk != nil {
			return s.refuse(codes.Unauthenticated, chk.reason, chk.err.Error(), "node", st.node)
		}
		s.seen.Touch(st.node, now)
		switch e := ev.GetEvent().(type) {
		case *edgepb.EdgeEvent_Heartbeat:
			s.m.messages.With("heartbeat").Inc()
		case *edgepb.EdgeEvent_CommandResult:
			s.m.messages.With("command_result").Inc()
			s.disp.Result(st.node, e.CommandResult)
		case *edgepb.EdgeEvent_CommandProgress:
			s.m.messages.With("command_progress").Inc()
			s.disp.Progress(ctx, st.node, e.CommandProgress)
		case *edgepb.EdgeEvent_CapabilityUpdate:
			if err := capabilities.Check(e.CapabilityUpdate.GetCapabilities()); err != nil {
				return s.refuse(codes.InvalidArgument, "capabilities", "CapabilityUpdate: "+err.Error(), "node", st.node)
			}
			s.m.messages.With("capability_update").Inc()
			s.noteCaps(st.node, e.CapabilityUpdate.GetCapabilities())
		}
	}
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// closeStatus is the status a stream closed from the relay's side ends with.
func closeStatus(reason error) error {
	switch {
	case reason == nil:
		return nil
	case errors.Is(reason, registry.ErrReplaced):
		return status.Error(codes.Aborted, "replaced by a newer stream of the same node")
	}
	if _, ok := status.FromError(reason); ok {
		return reason
	}
	return status.Error(codes.Unavailable, reason.Error())
}

// noteCaps keeps a daemon's capabilities for the next flush (tags are never touched).
func (s *Server) noteCaps(node string, caps *edgepb.EdgeCapabilities) {
	if caps == nil {
		return
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(caps)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.caps[node] = b
	s.mu.Unlock()
}
