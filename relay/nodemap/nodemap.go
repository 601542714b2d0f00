// Package nodemap loads the node map written by the policy server (the list of every node below
// this relay, with its hostname, policy server and key hash) and answers, for any node id,
// whether that node is attached to this relay, hangs below one of its sub-relays, or is unknown.
package nodemap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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

// route is the precomputed form of a Route: Via is an index into Map.nodes.
type route struct {
	kind RouteKind
	via  int32
}

// Map is a loaded node map. It is immutable after Parse and safe for concurrent readers.
type Map struct {
	self      string
	digest    string
	nodes     []Node // sorted by ID
	routes    []route
	index     map[string]int32
	below     []string // sorted
	subRelays []string // sorted
}

// Empty returns a map with no nodes for the relay self (every route is Unknown).
// Its Digest is "".
func Empty(self string) *Map {
	return &Map{self: self, index: map[string]int32{}}
}

// Self returns the id of the relay the map was loaded for.
func (m *Map) Self() string { return m.self }

// Len returns the number of entries in the map (this relay's own entry included, if present).
func (m *Map) Len() int { return len(m.nodes) }

// Digest returns the hex SHA-256 of the file the map was parsed from ("" for Empty).
func (m *Map) Digest() string { return m.digest }

// Node returns the entry for id.
func (m *Map) Node(id string) (Node, bool) {
	i, ok := m.index[id]
	if !ok {
		return Node{}, false
	}
	return m.nodes[i], true
}

// Route says where id sits relative to this relay. Ids not in the map are Unknown.
func (m *Map) Route(id string) Route {
	i, ok := m.index[id]
	if !ok {
		return Route{Kind: Unknown}
	}
	r := m.routes[i]
	if r.kind == BelowSubRelay {
		return Route{Kind: BelowSubRelay, Via: m.nodes[r.via].ID}
	}
	return Route{Kind: r.kind}
}

// Below returns the ids of every node below this relay (Mine and BelowSubRelay), sorted. This
// relay itself is included only at the root, where it is its own policy server.
func (m *Map) Below() []string { return slices.Clone(m.below) }

// SubRelays returns the ids of the nodes that are Mine and have at least one node below them,
// sorted. This relay itself is never one of them.
func (m *Map) SubRelays() []string { return slices.Clone(m.subRelays) }

// entry is one raw entry of the file. KeyHash is decoded leniently: a key-hash that is not a
// string is not a load error, the node just has no key.
type entry struct {
	Hostname     *string         `json:"hostname"`
	PolicyServer *string         `json:"policy-server"`
	KeyHash      json.RawMessage `json:"key-hash"`
}

// Parse parses a node map file for the relay whose node id is self. It accepts a bare object of
// entries or the same object wrapped as {"data": {...}}; {} is a map with no nodes, an
// empty file is an error (a file caught mid-write must not wipe the map in force).
// Every problem found (bad entries or ids, missing fields, dangling parents, cycles) is reported
// in one error naming all the node ids involved.
func Parse(data []byte, self string) (*Map, error) {
	if !validID(self) {
		return nil, fmt.Errorf("node map: invalid self node id %q", self)
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	raw, err := decodeTop(data)
	if err != nil {
		return nil, err
	}

	var p problems
	ids := make([]string, 0, len(raw))
	for id := range raw {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	m := &Map{
		self:   self,
		digest: digest,
		nodes:  make([]Node, 0, len(ids)),
		index:  make(map[string]int32, len(ids)),
	}
	for _, id := range ids {
		n, ok := parseEntry(id, raw[id], &p)
		if !ok {
			continue
		}
		m.index[id] = int32(len(m.nodes))
		m.nodes = append(m.nodes, n)
	}
	// Dangling parents: compared with every id in the file, so that a child of an entry that is
	// itself broken is not reported twice.
	for _, n := range m.nodes {
		if _, ok := raw[n.PolicyServer]; !ok && n.PolicyServer != self && n.ID != self {
			p.add(catDangling, fmt.Sprintf("%s -> %q", n.ID, n.PolicyServer))
		}
	}
	m.resolve(&p)
	if err := p.err(); err != nil {
		return nil, err
	}
	m.finish()
	return m, nil
}

// decodeTop decodes the top-level object, unwrapping {"data": {...}}.
func decodeTop(data []byte) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		// Most likely a file caught while being rewritten, or truncated by a full disk.
		return nil, errors.New("node map: the file is empty (a map with no nodes is {})")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("node map: invalid JSON: %w", err)
	}
	if top == nil {
		return nil, fmt.Errorf("node map: top level is null, want an object")
	}
	inner, ok := top["data"]
	if len(top) != 1 || !ok || !isObject(inner) {
		return top, nil
	}
	var wrapped map[string]json.RawMessage
	if err := json.Unmarshal(inner, &wrapped); err != nil {
		return nil, fmt.Errorf("node map: invalid JSON under \"data\": %w", err)
	}
	// A lone node whose id is "data" has a string "policy-server": that is the bare shape.
	if ps, ok := wrapped["policy-server"]; ok && isString(ps) {
		return top, nil
	}
	return wrapped, nil
}

func isObject(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && v[0] == '{'
}

func isString(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && v[0] == '"'
}

// parseEntry checks one entry; problems are recorded in p.
func parseEntry(id string, v json.RawMessage, p *problems) (Node, bool) {
	if !validID(id) {
		p.add(catBadID, fmt.Sprintf("%q", id))
		return Node{}, false
	}
	var e entry
	if !isObject(v) {
		p.add(catNotObject, id)
		return Node{}, false
	}
	if err := json.Unmarshal(v, &e); err != nil {
		p.add(catNotObject, id)
		return Node{}, false
	}
	ok := true
	if e.Hostname == nil || *e.Hostname == "" {
		p.add(catNoHostname, id)
		ok = false
	}
	switch {
	case e.PolicyServer == nil || *e.PolicyServer == "":
		p.add(catNoParent, id)
		ok = false
	case !validID(*e.PolicyServer):
		p.add(catBadParent, fmt.Sprintf("%s -> %q", id, *e.PolicyServer))
		ok = false
	}
	if !ok {
		return Node{}, false
	}
	n := Node{ID: id, Hostname: *e.Hostname, PolicyServer: *e.PolicyServer}
	var kh string
	if json.Unmarshal(e.KeyHash, &kh) == nil {
		n.KeyHash = kh
	}
	return n, true
}

// resolve computes every node's route, iteratively, each node visited once. A node whose chain
// of policy servers loops without reaching self is recorded as a cycle.
func (m *Map) resolve(p *problems) {
	const (
		unvisited = iota
		onPath
		done
	)
	n := len(m.nodes)
	m.routes = make([]route, n)
	state := make([]uint8, n)
	bad := make([]bool, n) // chain does not reach self (already reported as a problem)
	selfIdx, hasSelf := m.index[m.self]
	if hasSelf {
		state[selfIdx] = done
		if m.nodes[selfIdx].PolicyServer == m.self {
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
			ps := m.nodes[cur].PolicyServer
			if ps == m.self {
				// cur is Mine; resolve it here so that the unwinding below starts from it.
				path = path[:len(path)-1]
				m.routes[cur] = route{kind: Mine, via: noVia}
				state[cur] = done
				top = route{kind: BelowSubRelay, via: cur}
				break
			}
			pi, ok := m.index[ps]
			if !ok { // dangling or broken parent, already reported
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
					p.add(catCycle, m.nodes[c].ID)
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
		ps := m.nodes[selfIdx].PolicyServer
		if pi, ok := m.index[ps]; ok && ps != m.self && !bad[pi] {
			p.add(catCycle, m.self)
			for c := pi; ; {
				p.add(catCycle, m.nodes[c].ID)
				if m.routes[c].kind == Mine {
					break
				}
				c = m.index[m.nodes[c].PolicyServer]
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

// finish precomputes Below and SubRelays once the map is known to be valid.
func (m *Map) finish() {
	isSub := make([]bool, len(m.nodes))
	for i, n := range m.nodes {
		if n.ID == m.self {
			continue
		}
		if pi, ok := m.index[n.PolicyServer]; ok && m.routes[pi].kind == Mine && int(pi) != i {
			isSub[pi] = true
		}
	}
	for i, n := range m.nodes { // nodes are sorted, so both lists are too
		switch m.routes[i].kind {
		case Mine, BelowSubRelay:
			m.below = append(m.below, n.ID)
		}
		if isSub[i] && n.ID != m.self {
			m.subRelays = append(m.subRelays, n.ID)
		}
	}
}

// validID reports whether s is a valid node id: ^[A-Za-z0-9_.-]+$, at most 255 bytes,
// not "." or "..".
func validID(s string) bool {
	if s == "" || len(s) > 255 || s == "." || s == ".." {
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
