package dispatch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// ErrTooManyFleets: the dispatcher runs its maximum number of fleet commands.
var ErrTooManyFleets = errors.New("edge: too many fleet commands running")

// FleetEvent is one thing that happened on one node of a fleet command: an output chunk, or
// the node's end (Result or Err; Done is true).
type FleetEvent struct {
	Node   string
	Chunk  *edgepb.Chunk
	Done   bool
	Result *edgepb.EdgeResult
	Err    error
}

// FleetRequest is a command to run on several nodes.
type FleetRequest struct {
	Nodes    []string
	Tool     string
	Args     *structpb.Struct
	Deadline time.Duration // per node
	Parallel int           // nodes at once (at least 1)
}

// Fleet is a running fleet command.
type Fleet struct {
	ID      string
	Nodes   []string
	Started time.Time

	cancel context.CancelCauseFunc
	done   chan struct{}
}

// Done is closed when every node of the fleet has finished.
func (f *Fleet) Done() <-chan struct{} { return f.done }

// Cancel cancels the fleet: its in-flight per-node commands get a Cancel with reason and the
// nodes not started yet are skipped.
func (f *Fleet) Cancel(reason string) { f.cancel(errors.New(reason)) }

// StartFleet runs a command on every node of req with at most req.Parallel at once and
// returns at once; on is called for every event, one call at a time. The fleet ends when ctx
// ends, when it is cancelled, or when every node has finished.
func (d *Dispatcher) StartFleet(ctx context.Context, req FleetRequest, on func(FleetEvent)) (*Fleet, error) {
	if req.Tool == "" || req.Deadline <= 0 {
		return nil, fmt.Errorf("%w: tool %q, deadline %s", ErrBadRequest, req.Tool, req.Deadline)
	}
	parallel := max(req.Parallel, 1)
	fctx, cancel := context.WithCancelCause(ctx)
	f := &Fleet{ID: uuid.NewString(), Nodes: append([]string(nil), req.Nodes...), Started: time.Now(), cancel: cancel, done: make(chan struct{})}
	d.mu.Lock()
	switch {
	case d.closed:
		d.mu.Unlock()
		cancel(nil)
		return nil, ErrShutdown
	case len(d.fleets) >= d.opts.MaxFleets:
		d.mu.Unlock()
		cancel(nil)
		return nil, ErrTooManyFleets
	}
	d.fleets[f.ID] = f
	d.mu.Unlock()

	var emitMu sync.Mutex
	emit := func(ev FleetEvent) {
		emitMu.Lock()
		defer emitMu.Unlock()
		on(ev)
	}
	go func() {
		defer func() {
			d.mu.Lock()
			delete(d.fleets, f.ID)
			d.mu.Unlock()
			cancel(nil)
			close(f.done)
		}()
		slots := make(chan struct{}, parallel)
		var wg sync.WaitGroup
		for _, node := range f.Nodes {
			select {
			case slots <- struct{}{}:
			case <-fctx.Done():
			}
			if fctx.Err() != nil {
				emit(FleetEvent{Node: node, Done: true, Err: fmt.Errorf("edge: not started: %w", context.Cause(fctx))})
				continue
			}
			wg.Go(func() {
				defer func() { <-slots }()
				res, err := d.Invoke(fctx, node, req.Tool, req.Args, req.Deadline, func(ch *edgepb.Chunk) {
					emit(FleetEvent{Node: node, Chunk: ch})
				})
				emit(FleetEvent{Node: node, Done: true, Result: res, Err: err})
			})
		}
		wg.Wait()
	}()
	return f, nil
}

// CancelFleet cancels a running fleet command; false when there is none with that id.
func (d *Dispatcher) CancelFleet(id, reason string) bool {
	d.mu.Lock()
	f, ok := d.fleets[id]
	d.mu.Unlock()
	if ok {
		f.Cancel(reason)
	}
	return ok
}

// Fleets returns the running fleet commands, oldest first.
func (d *Dispatcher) Fleets() []*Fleet {
	d.mu.Lock()
	out := slices.Collect(maps.Values(d.fleets))
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b *Fleet) int { return a.Started.Compare(b.Started) })
	return out
}
