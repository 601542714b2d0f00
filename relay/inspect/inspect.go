// Package inspect answers an operator's questions about a relay: which shared files its
// store keeps, what its forward queue holds, which nodes its node map knows and where a PUT
// for a node goes, and why. The same documents are served by a running relay's admin
// listener (Routes) and built by `keel-relay` on a stopped relay's data directory.
package inspect

import (
	"fmt"
	"time"

	"github.com/keel-relay/keel/internal/wire/keyhash"
	"github.com/keel-relay/keel/relay/nodemap"
	"github.com/keel-relay/keel/storage"
)

// DefaultLimit is how many entries a listing returns unless asked; MaxLimit the most.
const (
	DefaultLimit = 1000
	MaxLimit     = 10000
)

// File is one shared file kept in the store (GET /files).
type File struct {
	Target    string    `json:"target"`
	Source    string    `json:"source"`
	ID        string    `json:"id"`
	Size      int64     `json:"size"`
	Algorithm string    `json:"algorithm"`
	Hash      string    `json:"hash"`
	Stored    time.Time `json:"stored"`
	Expires   time.Time `json:"expires"`
}

// Files is the listing of the files kept for one target, or for all.
type Files struct {
	Target string `json:"target,omitempty"`
	// Total counts every file of the listing's scope; Files holds the first of them, in
	// target, source, id order.
	Total int64  `json:"total"`
	Files []File `json:"files"`
}

// ListFiles lists at most limit of the files kept for target ("" = every target).
func ListFiles(store *storage.Store, target string, limit int) (Files, error) {
	out := Files{Target: target, Files: []File{}}
	err := store.ListFiles(target, func(m storage.FileMeta) bool {
		out.Total++
		if len(out.Files) < limit {
			out.Files = append(out.Files, File{Target: m.Key.Target, Source: m.Key.Source, ID: m.Key.ID, Size: m.Size,
				Algorithm: m.Algorithm, Hash: m.Hash, Stored: m.Stored.UTC(), Expires: m.Expires.UTC()})
		}
		return true
	})
	if err != nil {
		return out, fmt.Errorf("list files: %w", err)
	}
	return out, nil
}

// Job is one queued forward (GET /queue).
type Job struct {
	ID   string `json:"id"`
	File string `json:"file"` // target/source/id
	// NextHop is the sub-relay the file goes to, or "upstream".
	NextHop   string    `json:"next_hop"`
	Size      int64     `json:"size"`
	Queued    time.Time `json:"queued"`
	Due       time.Time `json:"due"`
	Expires   time.Time `json:"expires"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
}

// JobOf returns the operator's view of a stored job.
func JobOf(j storage.Job) Job {
	hop := j.NextHop
	if hop == "" {
		hop = "upstream"
	}
	return Job{ID: j.ID(), File: j.File.String(), NextHop: hop, Size: j.Size, Queued: j.Queued.UTC(), Due: j.Due.UTC(),
		Expires: j.Expires.UTC(), Attempts: j.Attempts, LastError: j.LastError}
}

// Queue is the forward queue: a summary of all of it, and its first jobs in due order.
type Queue struct {
	Total        int64      `json:"total"`
	Bytes        int64      `json:"bytes"`
	OldestQueued *time.Time `json:"oldest_queued,omitempty"`
	// LastError is the error of the job that failed last (LastErrorJob).
	LastError    string `json:"last_error,omitempty"`
	LastErrorJob string `json:"last_error_job,omitempty"`
	Jobs         []Job  `json:"jobs"`
}

// ListQueue summarizes the forward queue and lists at most limit of its jobs (0: none).
func ListQueue(store *storage.Store, limit int) (Queue, error) {
	sum, err := store.SummarizeQueue()
	if err != nil {
		return Queue{}, fmt.Errorf("summarize the queue: %w", err)
	}
	q := Queue{Total: sum.Jobs, Bytes: sum.Bytes, LastError: sum.LastError, LastErrorJob: sum.LastErrorJob, Jobs: []Job{}}
	if !sum.OldestQueued.IsZero() {
		t := sum.OldestQueued.UTC()
		q.OldestQueued = &t
	}
	if limit <= 0 {
		return q, nil
	}
	err = store.ListJobs(func(j storage.Job) bool {
		q.Jobs = append(q.Jobs, JobOf(j))
		return len(q.Jobs) < limit
	})
	if err != nil {
		return q, fmt.Errorf("list the queue: %w", err)
	}
	return q, nil
}

// Node is one entry of the node map, with its route from this relay (GET /nodes).
type Node struct {
	ID           string `json:"id"`
	Hostname     string `json:"hostname"`
	PolicyServer string `json:"policy_server"`
	KeyHash      string `json:"key_hash,omitempty"`
	// Route is "mine", "below-sub-relay" (Via) or "unknown" (not below this relay).
	Route string `json:"route"`
	Via   string `json:"via,omitempty"`
}

// Nodes is the node map in force (or the one a stopped relay would load).
type Nodes struct {
	Self   string `json:"self"`
	Digest string `json:"digest,omitempty"`
	// Source says where the map comes from: the nodes file, or the copy kept in the store.
	Source string `json:"source,omitempty"`
	Total  int    `json:"total"`
	Mine   int    `json:"mine"`
	Below  int    `json:"below"`
	Nodes  []Node `json:"nodes"`
}

// ListNodes lists at most limit nodes of m (source: where it comes from), sorted by id.
func ListNodes(m *nodemap.Map, source string, limit int) Nodes {
	mine, below := m.Counts()
	out := Nodes{Self: m.Self(), Digest: m.Digest(), Source: source, Total: m.Len(), Mine: mine, Below: below, Nodes: []Node{}}
	m.Each(func(n nodemap.Node, r nodemap.Route) bool {
		if len(out.Nodes) >= limit {
			return false
		}
		out.Nodes = append(out.Nodes, Node{ID: n.ID, Hostname: n.Hostname, PolicyServer: n.PolicyServer, KeyHash: n.KeyHash,
			Route: r.Kind.String(), Via: r.Via})
		return true
	})
	return out
}

// Where a PUT for a target goes (Route.Destination).
const (
	DestMine     = "mine"      // stored here, for the node to download
	DestSubRelay = "sub-relay" // forwarded to the sub-relay Route.Via
	DestUpstream = "upstream"  // forwarded to the upstream
	DestRefused  = "refused"   // refused with 404: the root knows no such node
)

// Route explains where a PUT /shared-files/ID/... goes, and whether a PUT from ID (as its
// source) is accepted (GET /nodes/ID/route).
type Route struct {
	Node   string `json:"node"`
	InMap  bool   `json:"in_map"`
	Self   bool   `json:"self,omitempty"`
	Parent string `json:"policy_server,omitempty"`
	// Chain is the node's policy servers, up to this relay (below it) or as far as the map
	// goes.
	Chain       []string `json:"chain,omitempty"`
	Destination string   `json:"destination"`
	Via         string   `json:"via,omitempty"`
	Why         string   `json:"why"`
	// SourceAccepted says whether the node may be the source of a shared file here: it must
	// be in the map with a usable key-hash (KeyHash), that of the key that signs.
	SourceAccepted bool   `json:"source_accepted"`
	KeyHash        string `json:"key_hash,omitempty"`
	SourceWhy      string `json:"source_why"`
}

// maxChain bounds the policy-server chain walked (a map has no cycles below this relay, but
// an unknown node's chain is only what the map says).
const maxChain = 64

// Explain says where a shared file for id goes from this relay (root: the root server, which
// refuses unknown targets; upstream: its URL, for the message), as the shared-files handler
// routes it, and whether id may sign one.
func Explain(m *nodemap.Map, root bool, upstream, id string) Route {
	r := Route{Node: id}
	n, ok := m.Node(id)
	r.InMap, r.Self = ok, id == m.Self()
	if ok {
		r.Parent = n.PolicyServer
		seen := map[string]bool{id: true}
		for p := n.PolicyServer; p != "" && !seen[p] && len(r.Chain) < maxChain; {
			r.Chain = append(r.Chain, p)
			seen[p] = true
			if p == m.Self() {
				break
			}
			pn, ok := m.Node(p)
			if !ok {
				break
			}
			p = pn.PolicyServer
		}
	}
	route := m.Route(id)
	switch {
	case route.Kind == nodemap.Mine:
		r.Destination = DestMine
		r.Why = fmt.Sprintf("its policy server is this relay (%s): files for it are stored here until it downloads them", m.Self())
		if r.Self {
			r.Why = "it is this root server itself: files for it are stored here"
		}
	case route.Kind == nodemap.BelowSubRelay:
		r.Destination, r.Via = DestSubRelay, route.Via
		r.Why = fmt.Sprintf("it hangs below %s, a sub-relay attached to this relay: files for it are queued and forwarded to %s", route.Via, route.Via)
	case root:
		r.Destination = DestRefused
		r.Why = "this is the root server and the node is not below it in the node map: a PUT for it is refused with 404"
		if ok {
			r.Why = fmt.Sprintf("this is the root server and the node's chain of policy servers (%v) does not reach it: a PUT for it is refused with 404", r.Chain)
		}
	default:
		r.Destination = DestUpstream
		switch {
		case r.Self:
			r.Why = "it is this relay itself, which is not its own policy server"
		case ok:
			r.Why = fmt.Sprintf("its chain of policy servers (%v) does not go through this relay", r.Chain)
		default:
			r.Why = "it is not in this relay's node map"
		}
		r.Why += fmt.Sprintf(": files for it are queued and forwarded to the upstream (%s)", upstream)
	}
	switch {
	case !ok:
		r.SourceWhy = "not in the node map: a PUT it signs as source is refused with 403"
	case n.KeyHash == "":
		r.SourceWhy = "its entry has no key-hash: a PUT it signs as source is refused with 403"
	default:
		r.KeyHash = n.KeyHash
		if _, err := keyhash.Parse(n.KeyHash); err != nil {
			r.SourceWhy = fmt.Sprintf("its key-hash is unusable (%v): a PUT it signs as source is refused with 403", err)
		} else {
			r.SourceAccepted = true
			r.SourceWhy = "accepted when signed by the key of this key-hash (compare with `keel-agent key-hash` on the node)"
		}
	}
	return r
}
