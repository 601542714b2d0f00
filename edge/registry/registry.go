// Package registry holds the relay's live ConnectEdge streams: one entry per node with a
// generation number (a new stream replaces the old one, last writer wins; deregistration is
// compare-and-delete by generation, so a late close never evicts the newer stream), and for
// each stream a bounded command queue drained by a single writer goroutine, started on
// demand. It also keeps the nodes' last-seen times in memory until they are flushed to the
// store.
package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// Errors returned by Send and Register.
var (
	// ErrNotConnected: the node has no live stream.
	ErrNotConnected = errors.New("edge: node has no live stream")
	// ErrQueueFull: the stream's send queue is full (the daemon is not reading).
	ErrQueueFull = errors.New("edge: stream send queue is full")
	// ErrClosed: the stream is closed.
	ErrClosed = errors.New("edge: stream closed")
	// ErrTooMany: the registry holds its maximum number of streams.
	ErrTooMany = errors.New("edge: too many streams")
	// ErrReplaced is the close reason of a stream replaced by a newer one of the same node.
	ErrReplaced = errors.New("edge: replaced by a newer stream of the same node")
)

// Stream is one registered ConnectEdge stream.
//
// Its commands go through a bounded queue to a single writer goroutine. The writer is
// started on demand: Send starts it when commands are waiting and none is running, and it
// exits once the queue is empty, so an idle stream holds neither a writer goroutine nor a
// queue buffer. There is never more than one writer per stream, so commands are sent in
// the order they were queued.
type Stream struct {
	NodeID    string
	StreamID  string
	Gen       uint64    // registration generation, unique in the registry
	Connected time.Time // when it was registered

	max       int // queue bound
	closed    chan struct{}
	closeOnce sync.Once
	reason    error // set once, before closed is closed

	mu      sync.Mutex
	queue   []*edgepb.EdgeCommand           // nil when empty
	send    func(*edgepb.EdgeCommand) error // set by Attach
	writing chan struct{}                   // non-nil while a writer runs; closed when it exits
}

// Send queues cmd for the stream's writer without blocking: a full queue is ErrQueueFull.
// It starts the writer when the stream is attached and no writer is running.
func (s *Stream) Send(cmd *edgepb.EdgeCommand) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	if len(s.queue) >= s.max {
		return ErrQueueFull
	}
	s.queue = append(s.queue, cmd)
	s.startWriterLocked()
	return nil
}

// Attach sets the function the writer sends commands with (the gRPC stream's Send) and
// starts the writer if commands are already waiting. Nothing is sent before Attach.
func (s *Stream) Attach(send func(*edgepb.EdgeCommand) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.send = send
	s.startWriterLocked()
}

// startWriterLocked starts the writer when it has something to do and is not running.
func (s *Stream) startWriterLocked() {
	if s.writing != nil || s.send == nil || len(s.queue) == 0 {
		return
	}
	done := make(chan struct{})
	s.writing = done
	go s.write(s.send, done)
}

// write is the writer: it sends the queued commands one at a time until the queue is empty
// or the stream is closed; a failed send closes the stream with that error.
func (s *Stream) write(send func(*edgepb.EdgeCommand) error, done chan struct{}) {
	defer close(done)
	for {
		cmd, ok := s.next()
		if !ok {
			return
		}
		if err := send(cmd); err != nil {
			s.Close(fmt.Errorf("edge: send to daemon: %w", err))
			s.mu.Lock()
			s.writing = nil
			s.mu.Unlock()
			return
		}
	}
}

// next takes the first queued command; with none (or once the stream is closed) it marks
// the writer stopped and reports false.
func (s *Stream) next() (*edgepb.EdgeCommand, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	closed := false
	select {
	case <-s.closed:
		closed = true
	default:
	}
	if closed || len(s.queue) == 0 {
		s.writing = nil
		return nil, false
	}
	cmd := s.queue[0]
	s.queue[0] = nil
	s.queue = s.queue[1:]
	if len(s.queue) == 0 {
		s.queue = nil // an idle stream keeps no buffer
	}
	return cmd, true
}

// Close closes the stream with a reason (returned by Reason); later calls do nothing. A
// running writer stops before its next send; commands still queued are dropped.
func (s *Stream) Close(reason error) {
	s.closeOnce.Do(func() {
		s.reason = reason
		close(s.closed)
	})
}

// Done is closed when the stream is closed.
func (s *Stream) Done() <-chan struct{} { return s.closed }

// Reason returns why the stream was closed (nil while it is open).
func (s *Stream) Reason() error {
	select {
	case <-s.closed:
		return s.reason
	default:
		return nil
	}
}

// WaitWriter waits until the writer, if one is running, stops or ctx ends, and reports
// whether no writer is running. An open stream's writer stops once the queue is empty; a
// closed stream's before its next send, but a send in progress may block on a daemon that
// does not read.
func (s *Stream) WaitWriter(ctx context.Context) bool {
	s.mu.Lock()
	done := s.writing
	s.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// Queued returns the number of commands waiting in the queue.
func (s *Stream) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Registry maps node ids to their live stream.
type Registry struct {
	max, queueLen int

	mu      sync.Mutex
	gen     uint64
	streams map[string]*Stream
}

// New returns a registry of at most maxStreams streams, each with a send queue of at most
// queueLen commands (allocated as commands are queued, not up front).
func New(maxStreams, queueLen int) *Registry {
	return &Registry{max: max(maxStreams, 1), queueLen: max(queueLen, 1), streams: make(map[string]*Stream)}
}

// Register makes a new stream the node's live one. A stream the node already had is closed
// with ErrReplaced and returned as replaced. A new node beyond the registry's bound is
// ErrTooMany (a replacement always fits).
func (r *Registry) Register(nodeID, streamID string, now time.Time) (s, replaced *Stream, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.streams[nodeID]
	if old == nil && len(r.streams) >= r.max {
		return nil, nil, ErrTooMany
	}
	r.gen++
	s = &Stream{
		NodeID: nodeID, StreamID: streamID, Gen: r.gen, Connected: now,
		max: r.queueLen, closed: make(chan struct{}),
	}
	r.streams[nodeID] = s
	if old != nil {
		old.Close(ErrReplaced)
	}
	return s, old, nil
}

// Deregister removes s if it is still its node's live stream (same generation) and closes
// it. It reports whether s was removed; false means a newer stream has taken its place.
func (r *Registry) Deregister(s *Stream, reason error) bool {
	r.mu.Lock()
	cur := r.streams[s.NodeID]
	removed := cur != nil && cur.Gen == s.Gen
	if removed {
		delete(r.streams, s.NodeID)
	}
	r.mu.Unlock()
	s.Close(reason)
	return removed
}

// Evict closes and removes the node's live stream, if any, and reports whether it had one.
func (r *Registry) Evict(nodeID string, reason error) bool {
	r.mu.Lock()
	s := r.streams[nodeID]
	delete(r.streams, nodeID)
	r.mu.Unlock()
	if s != nil {
		s.Close(reason)
	}
	return s != nil
}

// Get returns the node's live stream.
func (r *Registry) Get(nodeID string) (*Stream, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.streams[nodeID]
	return s, ok
}

// Send queues cmd on the node's live stream (see Stream.Send).
func (r *Registry) Send(nodeID string, cmd *edgepb.EdgeCommand) error {
	s, ok := r.Get(nodeID)
	if !ok {
		return ErrNotConnected
	}
	return s.Send(cmd)
}

// Len returns the number of live streams.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.streams)
}

// Streams returns the live streams, ordered by node id.
func (r *Registry) Streams() []*Stream {
	r.mu.Lock()
	out := slices.Collect(maps.Values(r.streams))
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b *Stream) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out
}

// CloseAll closes and removes every stream.
func (r *Registry) CloseAll(reason error) {
	r.mu.Lock()
	all := r.streams
	r.streams = make(map[string]*Stream)
	r.mu.Unlock()
	for _, s := range all {
		s.Close(reason)
	}
}
