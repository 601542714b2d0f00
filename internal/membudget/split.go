package membudget

import (
	"fmt"
	"strings"

	"github.com/keel-relay/keel/internal/wire/runoutput"
)

// Settings are the values of the relay that take memory, as configured; Split lowers them to
// fit a budget, never raises them.
type Settings struct {
	// Badger (storage.mem_table_size, num_memtables, block_cache_size, index_cache_size).
	MemTableSize   int64
	NumMemtables   int
	BlockCacheSize int64
	IndexCacheSize int64
	// ValueThreshold (storage.value_threshold) is not lowered: the memtable is kept large
	// enough for it (Badger refuses a threshold above 15% of the memtable).
	ValueThreshold int64
	// ChunkSize (storage.chunk_size) is not lowered (files are stored in chunks of it): it
	// prices an upload.
	ChunkSize int64
	// UploadSlots is http.max_concurrent_uploads.
	UploadSlots int
	// APIConnections is http.max_connections: connections the relay API has open at once.
	APIConnections int
	// EdgeStreams is edge.max_streams.
	EdgeStreams int
	// EdgeConnections bounds the open connections of the edge listener; it has no config
	// key: 0 (no bound) unless a budget derives it (EdgeStreams and a margin for the
	// connections that hold no stream: enrolling daemons, refused ones backing off).
	EdgeConnections int
	// RemoteRunCalls is remote_run.max_calls; RemoteRunOutputLines the output lines one call
	// queues for its client (each at most RemoteRunMaxLine bytes).
	RemoteRunCalls       int
	RemoteRunOutputLines int
}

// Costs the split is made of. StreamCost comes from BenchmarkIdleStreams (edge/server):
// 46 KiB per idle stream and its connection (24 KiB heap, 22 KiB goroutine stacks; 45 KiB of
// RSS; 42.5 KiB since the edge connections' buffers and windows are small), rounded up for
// the gRPC buffers of an active one.
const (
	// GoLimitPercent of the budget is the Go memory limit (runtime/debug.SetMemoryLimit);
	// the rest is for what the Go runtime does not count: the binary's data, the page cache
	// and socket buffers the kernel charges to the cgroup, C and kernel allocations.
	GoLimitPercent = 75
	// NearPercent of the Go limit is where the Gauge reports that the process is near it.
	NearPercent = 85
	// BaseReserve of the Go limit is kept for the relay itself: runtime, node map, gRPC,
	// metrics, Badger's tables and compactions.
	BaseReserve = 10 << 20
	// StreamCost is what one live ConnectEdge stream is counted for, its connection included.
	StreamCost = 64 << 10
	// ConnCost is what one open connection is counted for: of the relay API (goroutine, read
	// and write buffers, TLS state, a request's headers), or of the edge listener without a
	// stream: 26 KiB
	// measured for a connection whose ConnectEdge was refused (BenchmarkRefusedConnections,
	// edge/server: 15.5 KiB heap, 10 KiB stacks of its 3 goroutines; 18 KiB after a health
	// check only), rounded up for its read and write buffers while it is read or written.
	ConnCost = 32 << 10
	// EdgeConnPercent of the edge share is kept for connections that hold no stream; the
	// rest is for the streams.
	EdgeConnPercent = 20
	// MinEdgeConnMargin is the fewest connections without a stream the edge listener takes
	// on top of EdgeStreams.
	MinEdgeConnMargin = 16
	// UploadOverhead is counted per upload on top of its buffers: the transaction, hasher,
	// connection buffers and goroutine.
	UploadOverhead = 64 << 10
	// CopyBuffer is the copy buffer of an upload (relay/sharedfiles).
	CopyBuffer = 32 << 10
	// RemoteRunMaxLine is the output line a remote-run call is counted for: the longest output
	// line of a node (runoutput.MaxLine). Result lines and lines relayed from a sub-relay may
	// be longer (up to runoutput.MaxStreamLine) but are rare beside output lines.
	RemoteRunMaxLine = runoutput.MaxLine
	// RemoteRunCallOutput is the least output buffer a remote-run call is counted for.
	RemoteRunCallOutput = 8 * RemoteRunMaxLine
	// MinRemoteRunOutputLines is the fewest output lines a call may queue.
	MinRemoteRunOutputLines = 8
)

// Shares of what the Go limit leaves after BaseReserve, in percent.
const (
	storageShare = 30
	connShare    = 5
	uploadShare  = 30
	edgeShare    = 25
	remoteShare  = 10
)

// Minimums the budget never lowers a setting below.
const (
	minMemTable   = 2 << 20
	minCache      = 1 << 20
	minSlots      = 2
	minConns      = 64
	minStreams    = 16
	maxMemtables  = 2 // below bigBudget
	bigBudget     = 256 << 20
	bigMemtables  = 4
	memtableRatio = 15 // Badger: value threshold at most this percent of the memtable
)

// Plan is a budget split among the relay's parts.
type Plan struct {
	Budget
	// GoLimit is the Go runtime's memory limit; 0: leave it alone (no budget).
	GoLimit int64
	// NearAt is the memory in use (Gauge) from which the relay refuses new work; 0: never.
	NearAt int64
	// Settings are the effective values: min(configured, derived from the budget).
	Settings
	// StorageBytes, UploadBytes, EdgeBytes and RemoteRunBytes are the shares of the parts.
	StorageBytes, ConnBytes, UploadBytes, EdgeBytes, RemoteRunBytes int64
	// UploadCost is what one upload is counted for (2 chunks, the copy buffer, overhead).
	UploadCost int64
	// Lowered lists the settings the budget lowered, as "key configured->effective".
	Lowered []string
}

// Split divides budget b among the parts and returns the effective settings: each is the
// configured one, lowered when the budget's share for it is smaller. With no budget
// (b.Bytes == 0) nothing is lowered and the Go limit is left alone.
func Split(b Budget, configured Settings) Plan {
	p := Plan{Budget: b, Settings: configured}
	p.UploadCost = 2*configured.ChunkSize + CopyBuffer + UploadOverhead
	if b.Bytes <= 0 {
		return p
	}
	p.GoLimit = b.Bytes * GoLimitPercent / 100
	p.NearAt = p.GoLimit * NearPercent / 100
	h := max(p.GoLimit-BaseReserve, 0)
	p.StorageBytes = h * storageShare / 100
	p.ConnBytes = h * connShare / 100
	p.UploadBytes = h * uploadShare / 100
	p.EdgeBytes = h * edgeShare / 100
	p.RemoteRunBytes = h * remoteShare / 100

	lowerInt := func(key string, v *int, derived int) {
		if derived < *v {
			p.Lowered = append(p.Lowered, fmt.Sprintf("%s %d->%d", key, *v, derived))
			*v = derived
		}
	}
	lowerSize := func(key string, v *int64, derived int64) {
		if derived < *v {
			p.Lowered = append(p.Lowered, fmt.Sprintf("%s %s->%s", key, FormatBytes(*v), FormatBytes(derived)))
			*v = derived
		}
	}
	s := &p.Settings
	memtables := maxMemtables
	if b.Bytes >= bigBudget {
		memtables = bigMemtables
	}
	lowerInt("storage.num_memtables", &s.NumMemtables, memtables)
	// The memtables (and one being flushed) take half the storage share, the block cache a
	// quarter, the index cache an eighth.
	memtable := max(floorMiB(p.StorageBytes/2/int64(s.NumMemtables+1)), minMemTable, ceilDiv(s.ValueThreshold*100, memtableRatio))
	lowerSize("storage.mem_table_size", &s.MemTableSize, memtable)
	lowerSize("storage.block_cache_size", &s.BlockCacheSize, max(floorMiB(p.StorageBytes/4), minCache))
	lowerSize("storage.index_cache_size", &s.IndexCacheSize, max(floorMiB(p.StorageBytes/8), minCache))
	lowerInt("http.max_connections", &s.APIConnections, int(max(p.ConnBytes/ConnCost, minConns)))
	lowerInt("http.max_concurrent_uploads", &s.UploadSlots, int(max(p.UploadBytes/max(p.UploadCost, 1), minSlots)))
	streamBytes := p.EdgeBytes * (100 - EdgeConnPercent) / 100
	lowerInt("edge.max_streams", &s.EdgeStreams, int(max(streamBytes/StreamCost, minStreams)))
	// Not a config key: set (never lowered in the list) from the effective streams.
	conns := s.EdgeStreams + int(max((p.EdgeBytes-streamBytes)/ConnCost, MinEdgeConnMargin))
	if s.EdgeConnections <= 0 || conns < s.EdgeConnections {
		s.EdgeConnections = conns
	}
	lowerInt("remote_run.max_calls", &s.RemoteRunCalls, int(max(p.RemoteRunBytes/RemoteRunCallOutput, 1)))
	lines := p.RemoteRunBytes / int64(max(s.RemoteRunCalls, 1)) / RemoteRunMaxLine
	lowerInt("remote_run output lines per call", &s.RemoteRunOutputLines, int(max(lines, MinRemoteRunOutputLines)))
	return p
}

// String is the split in one line, for the log and check-config.
func (p Plan) String() string {
	if p.Bytes <= 0 {
		return "no memory limit: nothing lowered, Go memory limit left alone"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "go_limit=%s near_at=%s memtables=%dx%s block_cache=%s index_cache=%s api_connections=%d upload_slots=%d (%s each) edge_streams=%d edge_connections=%d (%s each without a stream) remote_run_calls=%d (%d output lines each)",
		FormatBytes(p.GoLimit), FormatBytes(p.NearAt), p.NumMemtables, FormatBytes(p.MemTableSize),
		FormatBytes(p.BlockCacheSize), FormatBytes(p.IndexCacheSize), p.APIConnections, p.UploadSlots, FormatBytes(p.UploadCost),
		p.EdgeStreams, p.EdgeConnections, FormatBytes(ConnCost), p.RemoteRunCalls, p.RemoteRunOutputLines)
	return b.String()
}

func floorMiB(n int64) int64 { return n &^ (1<<20 - 1) }

func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}
