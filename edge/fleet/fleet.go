// Package fleet is what the relay's edge operator surface (edge/server, edge/admin) shares
// about the fleet of enrolled edge daemons: the one vocabulary of a daemon's status and the
// selection of the daemons an operator command targets (by node id, or by tags and labels).
package fleet

import (
	"context"
	"fmt"
	"slices"

	"github.com/keel-relay/keel/storage"
)

// Statuses of an enrolled daemon, as the admin API (JSON "status") and the CLI show them.
// Unhealthy is the spec's: no heartbeat within stale_threshold.
const (
	Connected    = "connected"    // a live ConnectEdge stream, heard from within stale_threshold
	Unhealthy    = "unhealthy"    // a live stream, not heard from within stale_threshold
	Disconnected = "disconnected" // no live stream
	Revoked      = "revoked"      // revoked by the operator: never selected again
)

// Status returns a daemon's status: Revoked when it is revoked, else Disconnected without a
// live stream, else Unhealthy when it is stale (not heard from within stale_threshold), else
// Connected.
func Status(revoked, connected, stale bool) string {
	switch {
	case revoked:
		return Revoked
	case !connected:
		return Disconnected
	case stale:
		return Unhealthy
	}
	return Connected
}

// MaxParallel bounds the nodes a fleet command runs on at once.
const MaxParallel = 256

// Daemon is what a selection looks at of an enrolled daemon.
type Daemon struct {
	NodeID string
	Status string            // one of the statuses above
	Tags   map[string]string // server-managed tags
	Labels map[string]string // the custom labels the daemon declared in its capabilities
}

// Source is where a selection finds the enrolled daemons.
type Source interface {
	// Daemon returns one daemon; an error wrapping storage.ErrNotFound when it is not enrolled.
	Daemon(ctx context.Context, id string) (Daemon, error)
	// Daemons returns every enrolled daemon, revoked ones included.
	Daemons(ctx context.Context) ([]Daemon, error)
}

// Selector says which daemons a fleet command targets: the daemons named in Nodes or, when
// Nodes is empty, every daemon that has all of Tags and all of Labels (every daemon when both
// are empty). A revoked daemon is never selected.
type Selector struct {
	Nodes  []string
	Tags   map[string]string
	Labels map[string]string
}

// Matches reports whether the tag and label selector picks d: d is not revoked and has
// every tag of sel.Tags and every label of sel.Labels (sel.Nodes plays no part).
func (sel Selector) Matches(d Daemon) bool {
	return d.Status != Revoked && contains(d.Tags, sel.Tags) && contains(d.Labels, sel.Labels)
}

// Select returns the node ids of the daemons sel picks from src, sorted, each once. A named
// daemon src does not know is src's error (wrapping storage.ErrNotFound) and a revoked one an
// error wrapping storage.ErrRevoked; a tag and label selector that picks no daemon is an error
// wrapping storage.ErrNotFound.
func Select(ctx context.Context, src Source, sel Selector) ([]string, error) {
	if len(sel.Nodes) > 0 {
		return named(ctx, src, sel.Nodes)
	}
	all, err := src.Daemons(ctx)
	if err != nil {
		return nil, fmt.Errorf("list daemons: %w", err)
	}
	var nodes []string
	for _, d := range all {
		if sel.Matches(d) {
			nodes = append(nodes, d.NodeID)
		}
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no enrolled, unrevoked daemon has tags %v and labels %v: %w", sel.Tags, sel.Labels, storage.ErrNotFound)
	}
	slices.Sort(nodes)
	return slices.Compact(nodes), nil
}

// named checks the daemons named by a selector: each enrolled and not revoked.
func named(ctx context.Context, src Source, ids []string) ([]string, error) {
	nodes := slices.Clone(ids)
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	for _, id := range nodes {
		d, err := src.Daemon(ctx, id)
		if err != nil {
			return nil, err
		}
		if d.Status == Revoked {
			return nil, fmt.Errorf("daemon %s: %w", id, storage.ErrRevoked)
		}
	}
	return nodes, nil
}

// contains reports whether have has every pair of want.
func contains(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}
