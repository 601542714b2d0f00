// Package registry holds the relay's live ConnectEdge streams: one entry per node with a
// generation number (a new stream replaces the old one, last writer wins; deregistration is
// compare-and-delete by generation, so a late close never evicts the newer stream), and for
// each stream a bounded command queue drained by a single writer goroutine. It also keeps
// the nodes' last-seen times in memory until they are flushed to the store.
package registry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/keel-relay/keel/edge/edgepb"
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
type Stream struct {
	NodeID    string
	StreamID  string
	Gen       uint64    // registration generation, unique in the registry
	Connected time.Time // when it was registered

	queue     chan *edgepb.EdgeCommand
	closed    chan struct{}
	closeOnce sync.Once
	reason    error // set once, before closed is closed
}

// Send queues cmd for the stream's writer without blocking: a full queue is ErrQueueFull.
func (s *Stream) Send(cmd *edgepb.EdgeCommand) error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	select {
	case s.queue <- cmd:
		return nil
	case <-s.closed:
		return ErrClosed
	default:
		return ErrQueueFull
	}
}

// Close closes the stream with a reason (returned by Reason); later calls do nothing.
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

// Run is the stream's writer: it sends queued commands with send, one at a time, until the
// stream is closed, ctx is done or send fails (then the stream is closed with that error).
// Commands still queued when it stops are dropped; it returns how many.
func (s *Stream) Run(ctx context.Context, send func(*edgepb.EdgeCommand) error) int {
	for {
		select {
		case cmd := <-s.queue:
			if err := send(cmd); err != nil {
				s.Close(fmt.Errorf("edge: send to daemon: %w", err))
				return 1 + len(s.queue)
			}
		case <-s.closed:
			return len(s.queue)
		case <-ctx.Done():
			return len(s.queue)
		}
	}
}

// Queued returns the number of commands waiting in the queue.
func (s *Stream) Queued() int { return len(s.queue) }

// Registry maps node ids to their live stream.
type Registry struct {
	max, queueLen int

	mu      sync.Mutex
	gen     uint64
	streams map[string]*Stream
}

// New returns a registry of at most maxStreams streams, each with a send queue of queueLen
// commands.
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
		queue: make(chan *edgepb.EdgeCommand, r.queueLen), closed: make(chan struct{}),
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
	out := make([]*Stream, 0, len(r.streams))
	for _, s := range r.streams {
		out = append(out, s)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
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
