package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keel-relay/keel/edge/dispatch"
	"github.com/keel-relay/keel/edge/fleet"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/storage"
)

// DaemonInfo is an enrolled daemon as the operator sees it.
type DaemonInfo struct {
	NodeID, Tenant, Label string
	Status                string // fleet.Status: connected, unhealthy, disconnected or revoked
	Connected             bool
	StreamID              string    // the live stream's, when connected
	ConnectedAt           time.Time // when the live stream said Hello
	LastSeen              time.Time
	EnrolledAt            time.Time
	RevokedAt             time.Time
	KeyThumbprint         string // cnf.jkt of the current key
	PreviousUntil         time.Time
	TokenExpiry           time.Time
	Capabilities          *edgepb.EdgeCapabilities
	Tags                  map[string]string
	Pending               int // commands in flight
}

// lastSeen is the most recent sign of life of a daemon: in memory, stored, or enrollment.
func (s *Server) lastSeen(d storage.Daemon) time.Time {
	t := d.LastSeen
	if m, ok := s.seen.Get(d.NodeID); ok && m.After(t) {
		t = m
	}
	if d.EnrolledAt.After(t) {
		t = d.EnrolledAt
	}
	return t
}

// stale reports whether a daemon was not heard from within stale_threshold at now.
func (s *Server) stale(d storage.Daemon, now time.Time) bool {
	return now.Sub(s.lastSeen(d)) > s.opts.StaleThreshold
}

func (s *Server) info(d storage.Daemon, now time.Time) DaemonInfo {
	in := DaemonInfo{
		NodeID: d.NodeID, Tenant: d.Tenant, Label: d.Label,
		LastSeen: s.lastSeen(d), EnrolledAt: d.EnrolledAt, RevokedAt: d.RevokedAt,
		PreviousUntil: d.PreviousUntil, TokenExpiry: d.TokenExpiry, Tags: maps.Clone(d.Tags),
		Pending: s.disp.PendingFor(d.NodeID),
	}
	if len(d.PublicKey) > 0 {
		in.KeyThumbprint = newKeyState(d).currentJKT
	}
	if st, ok := s.reg.Get(d.NodeID); ok {
		in.Connected, in.StreamID, in.ConnectedAt = true, st.StreamID, st.Connected
	}
	in.Status = fleet.Status(d.Revoked, in.Connected, s.stale(d, now))
	b := d.Capabilities
	s.mu.Lock()
	if pending, ok := s.caps[d.NodeID]; ok {
		b = pending
	}
	s.mu.Unlock()
	if len(b) > 0 {
		caps := &edgepb.EdgeCapabilities{}
		if proto.Unmarshal(b, caps) == nil {
			in.Capabilities = caps
		}
	}
	return in
}

// Daemons lists every enrolled daemon (revoked ones included) by node id.
func (s *Server) Daemons() ([]DaemonInfo, error) {
	ds, err := s.store.Daemons()
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]DaemonInfo, 0, len(ds))
	for _, d := range ds {
		out = append(out, s.info(d, now))
	}
	return out, nil
}

// Daemon returns one daemon; storage.ErrNotFound when it is not enrolled.
func (s *Server) Daemon(node string) (DaemonInfo, error) {
	d, err := s.store.Daemon(node)
	if err != nil {
		return DaemonInfo{}, err
	}
	return s.info(d, s.now()), nil
}

// SetTags replaces a daemon's server-managed tags (nil or empty clears them).
func (s *Server) SetTags(node string, tags map[string]string) error {
	return s.store.UpdateDaemon(node, func(d *storage.Daemon) error {
		d.Tags = maps.Clone(tags)
		return nil
	})
}

// ErrRevoked is the reason of streams and commands ended by a revocation.
var ErrRevoked = errors.New("edge: daemon revoked")

// Revoke revokes a daemon: its row is marked revoked and its token blacklisted (one
// transaction), its live stream is closed and its commands in flight fail.
func (s *Server) Revoke(node string) (DaemonInfo, error) {
	now := s.now()
	d, err := s.store.Revoke(node, now)
	if err != nil {
		return DaemonInfo{}, err
	}
	s.noteBlacklisted(d.TokenID, d.TokenExpiry.Add(s.opts.ClockSkew))
	s.forgetKeys(node)
	evicted := s.reg.Evict(node, status.Error(codes.Unauthenticated, "daemon revoked"))
	failed := s.disp.FailNode(node, ErrRevoked)
	s.log.Info("edge daemon revoked", "node", node, "stream_closed", evicted, "commands_failed", failed)
	return s.info(d, now), nil
}

// Invoke runs a tool on one daemon and waits for its result (see dispatch.Dispatcher.Invoke).
func (s *Server) Invoke(ctx context.Context, node, tool string, args *structpb.Struct, deadline time.Duration, progress func(*edgepb.Chunk)) (*edgepb.EdgeResult, error) {
	return s.disp.Invoke(ctx, node, tool, args, deadline, progress)
}

// Select returns the node ids of the daemons a selector picks, sorted (see fleet.Select).
func (s *Server) Select(ctx context.Context, sel fleet.Selector) ([]string, error) {
	return fleet.Select(ctx, fleetSource{s}, sel)
}

// fleetSource is the server's enrolled daemons as a fleet.Source.
type fleetSource struct{ s *Server }

// Daemon implements fleet.Source.
func (f fleetSource) Daemon(_ context.Context, id string) (fleet.Daemon, error) {
	in, err := f.s.Daemon(id)
	if err != nil {
		return fleet.Daemon{}, fmt.Errorf("daemon %s: %w", id, err)
	}
	return in.fleetDaemon(), nil
}

// Daemons implements fleet.Source.
func (f fleetSource) Daemons(context.Context) ([]fleet.Daemon, error) {
	all, err := f.s.Daemons()
	if err != nil {
		return nil, err
	}
	out := make([]fleet.Daemon, 0, len(all))
	for _, in := range all {
		out = append(out, in.fleetDaemon())
	}
	return out, nil
}

// fleetDaemon is what a fleet selection looks at of the daemon.
func (in DaemonInfo) fleetDaemon() fleet.Daemon {
	return fleet.Daemon{NodeID: in.NodeID, Status: in.Status, Tags: in.Tags, Labels: in.Capabilities.GetCustomLabels()}
}

// FleetRequest is a command for the daemons a selector picks.
type FleetRequest struct {
	Selector fleet.Selector
	Tool     string
	Args     *structpb.Struct
	Deadline time.Duration // per node
	Parallel int           // nodes at once, at most fleet.MaxParallel
}

// StartFleet starts a fleet command and returns at once; on receives every event (output
// chunks tagged with their node, then each node's end), one call at a time. Cancel it with
// CancelFleet and the returned Fleet's ID, or by ending ctx.
func (s *Server) StartFleet(ctx context.Context, req FleetRequest, on func(dispatch.FleetEvent)) (*dispatch.Fleet, error) {
	nodes, err := s.Select(ctx, req.Selector)
	if err != nil {
		return nil, err
	}
	parallel := min(max(req.Parallel, 1), fleet.MaxParallel)
	return s.disp.StartFleet(ctx, dispatch.FleetRequest{
		Nodes: nodes, Tool: req.Tool, Args: req.Args, Deadline: req.Deadline, Parallel: parallel,
	}, on)
}

// CancelFleet cancels a running fleet command; false when none has that id.
func (s *Server) CancelFleet(id, reason string) bool { return s.disp.CancelFleet(id, reason) }

// Fleets lists the running fleet commands.
func (s *Server) Fleets() []*dispatch.Fleet { return s.disp.Fleets() }

// Cancel asks a daemon to cancel one command.
func (s *Server) Cancel(node, commandID, reason string) error {
	return s.disp.Cancel(node, commandID, reason)
}

// Drain asks one daemon to refuse new work and finish what it has.
func (s *Server) Drain(node string) error { return s.disp.Drain(node) }

// DrainAll sends Drain to every live stream and returns how many got it.
func (s *Server) DrainAll() int {
	n := 0
	for _, st := range s.reg.Streams() {
		if s.disp.Drain(st.NodeID) == nil {
			n++
		}
	}
	return n
}

// PushConfig sends a config delta to one daemon.
func (s *Server) PushConfig(node string, delta []byte, version string) error {
	return s.disp.PushConfig(node, delta, version)
}

// ShutdownDaemon asks one daemon to stop after grace.
func (s *Server) ShutdownDaemon(node string, grace time.Duration) error {
	return s.disp.Shutdown(node, grace)
}

// Streams returns the number of live ConnectEdge streams (one per connected daemon).
func (s *Server) Streams() int { return s.reg.Len() }

// Connected reports whether a node has a live stream.
func (s *Server) Connected(node string) bool {
	_, ok := s.reg.Get(node)
	return ok
}
