// Package nodemap loads the node map written by the policy server (the list of every node below
// this relay, with its hostname, policy server and key hash) and answers, for any node id,
// whether that node is attached to this relay, hangs below one of its sub-relays, or is unknown.
package nodemap

import (
	"fmt"
	"slices"
	"strings"
)

// Node is one entry of the node map.
type Node struct {
	ID           string // the node's id (the key of its entry)
	Hostname     string // "hostname"
	PolicyServer string // "policy-server": the id of the relay the node hangs under
	KeyHash      string // "key-hash", raw as in the file; "" when absent or not a string
}

// RouteKind says where a node sits relative to this relay.
type RouteKind int

// The route kinds.
const (
	Unknown       RouteKind = iota // not in the map, or this relay itself at a non-root relay
	Mine                           // directly attached: its policy server is this relay
	BelowSubRelay                  // below a sub-relay that is Mine (Route.Via)
)

// String returns the kind's name, for logs.
func (k RouteKind) String() string {
	switch k {
	case Unknown:
		return "unknown"
	case Mine:
		return "mine"
	case BelowSubRelay:
		return "below-sub-relay"
	}
	return fmt.Sprintf("RouteKind(%d)", int(k))
}

// Route is the answer to "where is this node?".
type Route struct {
	Kind RouteKind
	Via  string // for BelowSubRelay: the id of the sub-relay, attached to this relay, to go through
}

// noVia marks a route without a sub-relay.
const noVia = -1

// route is the precomputed form of a Route: via is a node index.
type route struct {
	kind RouteKind
	via  int32
}

// node is one entry of a loaded map. Its id, hostname and key hash are stored one after the
// other in the map's text, from off; its policy server is an index into the map's parents.
type node struct {
	off     uint32
	hostLen uint32
	keyLen  uint32
	parent  uint32
	idLen   uint8
}

// Map is a loaded node map. It is immutable after Parse and safe for concurrent readers.
//
// A node takes 28 bytes plus its id, hostname and key hash, stored once: the policy servers,
// few and shared by many nodes, are stored once each, and lookups search the nodes, sorted by
// id, rather than an index. The file the map was parsed from is not kept.
type Map struct {
	self      string
	digest    string
	text      text
	nodes     []node   // sorted by id
	parents   []string // the distinct policy servers; node.parent indexes it
	routes    []route  // by node index
	below     int      // how many nodes are Mine or BelowSubRelay
	mine      int      // how many nodes are Mine
	subRelays []int32  // in id order
}

// Empty returns a map with no nodes for the relay self (every route is Unknown).
// Its Digest is "".
func Empty(self string) *Map {
	return &Map{self: self}
}

// Self returns the id of the relay the map was loaded for.
func (m *Map) Self() string { return m.self }

// Len returns the number of entries in the map (this relay's own entry included, if present).
func (m *Map) Len() int { return len(m.nodes) }

// Digest returns the hex SHA-256 of the file the map was parsed from ("" for Empty).
func (m *Map) Digest() string { return m.digest }

// Node returns the entry for id.
func (m *Map) Node(id string) (Node, bool) {
	i := m.find(id)
	if i < 0 {
		return Node{}, false
	}
	return m.nodeAt(i), true
}

// Route says where id sits relative to this relay. Ids not in the map are Unknown.
func (m *Map) Route(id string) Route {
	i := m.find(id)
	if i < 0 {
		return Route{Kind: Unknown}
	}
	r := m.routes[i]
	if r.kind == BelowSubRelay {
		return Route{Kind: BelowSubRelay, Via: m.id(r.via)}
	}
	return Route{Kind: r.kind}
}

// Below returns the ids of every node below this relay (Mine and BelowSubRelay), sorted. This
// relay itself is included only at the root, where it is its own policy server.
func (m *Map) Below() []string {
	out := make([]string, 0, m.below)
	for i, r := range m.routes { // nodes are sorted by id
		if r.kind != Unknown {
			out = append(out, m.id(int32(i)))
		}
	}
	return out
}

// Counts returns how many nodes are Mine (their policy server is this relay; at the root,
// the root itself) and how many are below this relay at all (Mine or BelowSubRelay): what
// relayd exports as rudder_relayd_managed_nodes_total and rudder_relayd_sub_nodes_total.
func (m *Map) Counts() (mine, below int) { return m.mine, m.below }

// SubRelays returns the ids of the nodes that are Mine and have at least one node below them,
// sorted. This relay itself is never one of them.
func (m *Map) SubRelays() []string {
	out := make([]string, len(m.subRelays))
	for k, i := range m.subRelays {
		out[k] = m.id(i)
	}
	return out
}

// id returns the id of the node at index i.
func (m *Map) id(i int32) string {
	n := &m.nodes[i]
	return m.text.get(n.off, uint32(n.idLen))
}

// nodeAt returns the node at index i.
func (m *Map) nodeAt(i int32) Node {
	n := &m.nodes[i]
	all := m.text.get(n.off, uint32(n.idLen)+n.hostLen+n.keyLen)
	host := all[n.idLen:][:n.hostLen]
	return Node{ID: all[:n.idLen], Hostname: host, PolicyServer: m.parents[n.parent], KeyHash: all[uint32(n.idLen)+n.hostLen:]}
}

// find returns the index of id, or -1.
func (m *Map) find(id string) int32 {
	lo, hi := 0, len(m.nodes)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if m.id(int32(mid)) < id {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(m.nodes) && m.id(int32(lo)) == id {
		return int32(lo)
	}
	return -1
}

// resolve computes every node's route, iteratively, each node visited once. A node whose chain
// of policy servers loops without reaching self is recorded as a cycle. parent gives, for each
// entry of m.parents, the index of its node (-1: not in the map).
func (m *Map) resolve(parent []int32, p *problems) {
	const (
		unvisited = iota
		onPath
		done
	)
	n := len(m.nodes)
	m.routes = make([]route, n)
	state := make([]uint8, n)
	bad := make([]bool, n) // chain does not reach self (already reported as a problem)
	isSelf := func(i int32) bool { return m.parents[m.nodes[i].parent] == m.self }
	selfIdx := m.find(m.self)
	hasSelf := selfIdx >= 0
	if hasSelf {
		state[selfIdx] = done
		if isSelf(selfIdx) {
			m.routes[selfIdx] = route{kind: Mine, via: noVia}
		} else {
			m.routes[selfIdx] = route{kind: Unknown, via: noVia}
		}
	}
	var path []int32
	for start := range n {
		if state[start] != unvisited {
			continue
		}
		path = append(path[:0], int32(start))
		state[start] = onPath
		// Walk up until the chain ends: at self, at a resolved node, outside the map, or in a loop.
		var top route
		topBad := false
		for {
			cur := path[len(path)-1]
			if isSelf(cur) {
				// cur is Mine; resolve it here so that the unwinding below starts from it.
				path = path[:len(path)-1]
				m.routes[cur] = route{kind: Mine, via: noVia}
				state[cur] = done
				top = route{kind: BelowSubRelay, via: cur}
				break
			}
			pi := parent[m.nodes[cur].parent]
			if pi < 0 { // dangling or broken parent, already reported
				topBad = true
				break
			}
			switch state[pi] {
			case done:
				if bad[pi] {
					topBad = true
				} else {
					top = childRoute(m.routes[pi], pi)
				}
			case onPath:
				at := slices.Index(path, pi)
				for _, c := range path[at:] {
					p.add(catCycle, m.id(c))
				}
				topBad = true
			default:
				state[pi] = onPath
				path = append(path, pi)
				continue
			}
			break
		}
		// Unwind: every node left on the path gets the route its parent gives it.
		for i := len(path) - 1; i >= 0; i-- {
			c := path[i]
			state[c] = done
			if topBad {
				bad[c] = true
				continue
			}
			m.routes[c] = top
			top = childRoute(top, c)
		}
	}
	// This relay's own entry, when its parent is in the map: the parent chain either reaches this
	// relay (a loop through it) or is already broken.
	if hasSelf {
		if pi := parent[m.nodes[selfIdx].parent]; pi >= 0 && !isSelf(selfIdx) && !bad[pi] {
			p.add(catCycle, m.self)
			for c := pi; ; {
				p.add(catCycle, m.id(c))
				if m.routes[c].kind == Mine {
					break
				}
				c = parent[m.nodes[c].parent]
			}
		}
	}
}

// childRoute is the route of a node whose parent, at index parent, has route r.
func childRoute(r route, parent int32) route {
	if r.kind == Mine {
		return route{kind: BelowSubRelay, via: parent}
	}
	return r
}

// finish counts the nodes below this relay and lists the sub-relays, once the map is known to
// be valid.
func (m *Map) finish(parent []int32) {
	isSub := make([]bool, len(m.nodes))
	for i := range m.nodes {
		if m.routes[i].kind != Unknown {
			m.below++
		}
		if m.routes[i].kind == Mine {
			m.mine++
		}
		if m.id(int32(i)) == m.self {
			continue
		}
		if pi := parent[m.nodes[i].parent]; pi >= 0 && m.routes[pi].kind == Mine && int(pi) != i {
			isSub[pi] = true
		}
	}
	for i := range m.nodes { // nodes are sorted, so the list is too
		if isSub[i] && m.id(int32(i)) != m.self {
			m.subRelays = append(m.subRelays, int32(i))
		}
	}
}

// validID reports whether s is a valid node id: ^[A-Za-z0-9_.-]+$, at most 255 bytes,
// not "." or "..".
func validID[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > 255 || string(s) == "." || string(s) == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// Problem categories, in the order they are reported.
const (
	catNotObject = iota
	catBadID
	catDuplicate
	catNoHostname
	catNoParent
	catBadParent
	catDangling
	catCycle
	numCats
)

var catNames = [numCats]string{
	catNotObject:  "entry is not a valid node object",
	catBadID:      "invalid node id",
	catDuplicate:  "node id listed more than once",
	catNoHostname: "missing hostname",
	catNoParent:   "missing policy-server",
	catBadParent:  "invalid policy-server",
	catDangling:   "policy-server not in the map",
	catCycle:      "cycle in policy servers",
}

// problems collects load errors by category.
type problems struct {
	byCat [numCats][]string
}

func (p *problems) add(cat int, item string) { p.byCat[cat] = append(p.byCat[cat], item) }

// err returns nil when nothing was recorded, else one error listing every category with its
// node ids sorted.
func (p *problems) err() error {
	var parts []string
	for cat, items := range p.byCat {
		if len(items) == 0 {
			continue
		}
		slices.Sort(items)
		items = slices.Compact(items)
		parts = append(parts, catNames[cat]+": "+strings.Join(items, ", "))
	}
	if len(parts) == 0 {
		return nil
	}
	return fmt.Errorf("node map: %s", strings.Join(parts, "; "))
}
