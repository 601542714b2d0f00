package fleet

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/keel-relay/keel/storage"
)

// enrolled is a Source over a fixed list of daemons, as a store would return them.
type enrolled []Daemon

func (e enrolled) Daemon(_ context.Context, id string) (Daemon, error) {
	for _, d := range e {
		if d.NodeID == id {
			return d, nil
		}
	}
	return Daemon{}, fmt.Errorf("daemon %s: %w", id, storage.ErrNotFound)
}

func (e enrolled) Daemons(context.Context) ([]Daemon, error) { return e, nil }

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		revoked, connected, stale bool
		want                      string
	}{
		{false, true, false, Connected},
		{false, true, true, Unhealthy},
		{false, false, false, Disconnected},
		{false, false, true, Disconnected},
		{true, true, false, Revoked},
		{true, false, true, Revoked},
	} {
		if got := Status(tc.revoked, tc.connected, tc.stale); got != tc.want {
			t.Errorf("Status(revoked %v, connected %v, stale %v) = %q, want %q", tc.revoked, tc.connected, tc.stale, got, tc.want)
		}
	}
}

func TestSelect(t *testing.T) {
	src := enrolled{
		{NodeID: "c", Status: Connected, Tags: map[string]string{"env": "prod"}, Labels: map[string]string{"site": "par"}},
		{NodeID: "a", Status: Unhealthy, Tags: map[string]string{"env": "prod", "tier": "web"}},
		{NodeID: "b", Status: Disconnected, Tags: map[string]string{"env": "dev"}, Labels: map[string]string{"site": "par"}},
		{NodeID: "r", Status: Revoked, Tags: map[string]string{"env": "prod"}, Labels: map[string]string{"site": "par"}},
	}
	for _, tc := range []struct {
		name string
		sel  Selector
		want []string
		err  error  // what the error wraps
		msg  string // the error's message
	}{
		{name: "all", sel: Selector{}, want: []string{"a", "b", "c"}},
		{name: "by tag", sel: Selector{Tags: map[string]string{"env": "prod"}}, want: []string{"a", "c"}},
		{name: "by tags", sel: Selector{Tags: map[string]string{"env": "prod", "tier": "web"}}, want: []string{"a"}},
		{name: "by label", sel: Selector{Labels: map[string]string{"site": "par"}}, want: []string{"b", "c"}},
		{name: "by tag and label", sel: Selector{Tags: map[string]string{"env": "prod"}, Labels: map[string]string{"site": "par"}}, want: []string{"c"}},
		{name: "a tag is not a label", sel: Selector{Labels: map[string]string{"env": "prod"}}, err: storage.ErrNotFound,
			msg: "no enrolled, unrevoked daemon has tags map[] and labels map[env:prod]: not found"},
		{name: "empty value must match", sel: Selector{Tags: map[string]string{"env": ""}}, err: storage.ErrNotFound,
			msg: "no enrolled, unrevoked daemon has tags map[env:] and labels map[]: not found"},
		{name: "only revoked match", sel: Selector{Tags: map[string]string{"env": "prod"}, Labels: map[string]string{"site": "par", "x": "y"}}, err: storage.ErrNotFound,
			msg: "no enrolled, unrevoked daemon has tags map[env:prod] and labels map[site:par x:y]: not found"},
		{name: "by id", sel: Selector{Nodes: []string{"c", "b", "c"}}, want: []string{"b", "c"}},
		{name: "by id, disconnected", sel: Selector{Nodes: []string{"b"}}, want: []string{"b"}},
		{name: "by id wins over tags", sel: Selector{Nodes: []string{"b"}, Tags: map[string]string{"env": "prod"}}, want: []string{"b"}},
		{name: "by id, revoked", sel: Selector{Nodes: []string{"a", "r"}}, err: storage.ErrRevoked, msg: "daemon r: daemon revoked"},
		{name: "by id, unknown", sel: Selector{Nodes: []string{"a", "zz"}}, err: storage.ErrNotFound, msg: "daemon zz: not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Select(context.Background(), src, tc.sel)
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("Select: %v", err)
			case tc.err != nil && (!errors.Is(err, tc.err) || err.Error() != tc.msg):
				t.Fatalf("Select = %v, %v; want an error %q wrapping %v", got, err, tc.msg, tc.err)
			case !reflect.DeepEqual(got, tc.want):
				t.Errorf("Select = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSelectNone(t *testing.T) {
	if got, err := Select(context.Background(), enrolled{}, Selector{}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Select over no daemon = %v, %v; want an error wrapping storage.ErrNotFound", got, err)
	}
}
