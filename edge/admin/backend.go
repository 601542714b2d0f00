package admin

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/keel-relay/keel/edge/dispatch"
	"github.com/keel-relay/keel/edge/fleet"
	"github.com/keel-relay/keel/edge/server"
)

// ServerBackend adapts the relay's edge server to Backend.
type ServerBackend struct {
	S *server.Server
}

var _ Backend = ServerBackend{}

// View turns the server's DaemonInfo into the admin API's Daemon (its status is the
// server's: see fleet.Status).
func View(in server.DaemonInfo) Daemon {
	d := Daemon{NodeID: in.NodeID, Tenant: in.Tenant, Label: in.Label, Status: in.Status, Tags: maps.Clone(in.Tags)}
	if d.Tags == nil {
		d.Tags = map[string]string{}
	}
	d.LastSeen, d.EnrolledAt, d.RevokedAt = timePtr(in.LastSeen), timePtr(in.EnrolledAt), timePtr(in.RevokedAt)
	c := in.Capabilities
	d.Capabilities = Capabilities{
		OS: c.GetOs(), Arch: c.GetArch(), Tools: slices.Clone(c.GetLocalTools()),
		MountPoints: slices.Clone(c.GetMountPoints()), Labels: maps.Clone(c.GetCustomLabels()),
	}
	if d.Capabilities.Tools == nil {
		d.Capabilities.Tools = []string{}
	}
	if d.Capabilities.Labels == nil {
		d.Capabilities.Labels = map[string]string{}
	}
	return d
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Daemons implements Backend.
func (b ServerBackend) Daemons(context.Context) ([]Daemon, error) {
	in, err := b.S.Daemons()
	if err != nil {
		return nil, fmt.Errorf("list daemons: %w", err)
	}
	out := make([]Daemon, 0, len(in))
	for _, d := range in {
		out = append(out, View(d))
	}
	return out, nil
}

// Daemon implements Backend.
func (b ServerBackend) Daemon(_ context.Context, id string) (Daemon, error) {
	in, err := b.S.Daemon(id)
	if err != nil {
		return Daemon{}, fmt.Errorf("daemon %s: %w", id, err)
	}
	return View(in), nil
}

// SetTags implements Backend.
func (b ServerBackend) SetTags(ctx context.Context, id string, tags map[string]string) (Daemon, error) {
	if err := b.S.SetTags(id, tags); err != nil {
		return Daemon{}, fmt.Errorf("daemon %s: set tags: %w", id, err)
	}
	return b.Daemon(ctx, id)
}

// Revoke implements Backend.
func (b ServerBackend) Revoke(_ context.Context, id string) (Daemon, error) {
	in, err := b.S.Revoke(id)
	if err != nil {
		return Daemon{}, fmt.Errorf("daemon %s: revoke: %w", id, err)
	}
	return View(in), nil
}

// Drain implements Backend.
func (b ServerBackend) Drain(ctx context.Context, id string) error {
	if _, err := b.Daemon(ctx, id); err != nil {
		return err
	}
	if err := b.S.Drain(id); err != nil {
		return fmt.Errorf("daemon %s: drain: %w", id, err)
	}
	return nil
}

// DrainAll implements Backend.
func (b ServerBackend) DrainAll(context.Context) (int, error) { return b.S.DrainAll(), nil }

// PushConfig implements Backend.
func (b ServerBackend) PushConfig(ctx context.Context, id string, delta []byte, version string) error {
	if _, err := b.Daemon(ctx, id); err != nil {
		return err
	}
	if err := b.S.PushConfig(id, delta, version); err != nil {
		return fmt.Errorf("daemon %s: push config: %w", id, err)
	}
	return nil
}

// Select implements Backend.
func (b ServerBackend) Select(ctx context.Context, sel fleet.Selector) ([]string, error) {
	return b.S.Select(ctx, sel)
}

// StartFleet implements Backend.
func (b ServerBackend) StartFleet(ctx context.Context, req dispatch.FleetRequest, on func(dispatch.FleetEvent)) (*dispatch.Fleet, error) {
	return b.S.StartFleet(ctx, server.FleetRequest{
		Selector: fleet.Selector{Nodes: req.Nodes}, Tool: req.Tool, Args: req.Args, Deadline: req.Deadline, Parallel: req.Parallel,
	}, on)
}

// CancelFleet implements Backend.
func (b ServerBackend) CancelFleet(id, reason string) bool { return b.S.CancelFleet(id, reason) }

// Fleets implements Backend.
func (b ServerBackend) Fleets() []*dispatch.Fleet { return b.S.Fleets() }
