package membudget

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Pressure tells whether the process is near its memory budget: new work (an upload's body,
// an edge stream, a remote-run call) is then refused or made to wait. Gauge is the real one;
// tests give their own.
type Pressure interface {
	Near() bool
}

// Never is a Pressure that is never near (no budget).
type Never struct{}

// Near reports false.
func (Never) Near() bool { return false }

// SampleEvery is how often, at most, a Gauge reads the runtime's memory statistics.
const SampleEvery = 50 * time.Millisecond

// Runtime metrics a Gauge reads (runtime/metrics).
const (
	metricTotal    = "/memory/classes/total:bytes"
	metricReleased = "/memory/classes/heap/released:bytes"
	metricFree     = "/memory/classes/heap/free:bytes"
	metricObjects  = "/memory/classes/heap/objects:bytes"
	metricLive     = "/gc/heap/live:bytes"
)

// Gauge measures the memory the Go runtime holds, from runtime/metrics, at most once per
// SampleEvery however often it is asked. It is safe for concurrent use.
type Gauge struct {
	nearAt int64

	mu      sync.Mutex // one sampler at a time; guards samples
	samples []metrics.Sample
	next    atomic.Int64 // unix nanoseconds of the next sample
	inUse   atomic.Int64
	pressed atomic.Int64
	// collecting is set while a collection asked for by the gauge runs; lastGC is when the
	// last one was asked for (unix nanoseconds).
	collecting atomic.Bool
	lastGC     atomic.Int64
}

// CollectEvery is how often, at most, a gauge near its threshold asks for a garbage
// collection: the live heap it goes by is measured by collections, and a relay that refuses
// work allocates little, so that without one the gauge could stay near long after the memory
// was freed.
const CollectEvery = time.Second

// NewGauge returns a gauge that is near from nearAt bytes of memory in use after garbage
// collection (Plan.NearAt); nearAt <= 0: never near.
func NewGauge(nearAt int64) *Gauge {
	g := &Gauge{nearAt: nearAt, samples: []metrics.Sample{
		{Name: metricTotal}, {Name: metricReleased}, {Name: metricObjects}, {Name: metricLive}, {Name: metricFree},
	}}
	g.sample(time.Now())
	return g
}

// Near reports whether the memory in use, the garbage aside, is at or above the threshold.
func (g *Gauge) Near() bool {
	if g.nearAt <= 0 {
		return false
	}
	g.refresh()
	return g.pressed.Load() >= g.nearAt
}

// InUse returns the memory the Go runtime holds from the system (released pages aside): what
// the process's RSS is made of, the binary aside.
func (g *Gauge) InUse() int64 {
	g.refresh()
	return g.inUse.Load()
}

// NearAt returns the threshold (0: never near).
func (g *Gauge) NearAt() int64 { return g.nearAt }

func (g *Gauge) refresh() {
	now := time.Now()
	if now.UnixNano() < g.next.Load() || !g.mu.TryLock() {
		return // fresh enough, or another goroutine is sampling
	}
	defer g.mu.Unlock()
	if now.UnixNano() >= g.next.Load() {
		g.sampleLocked(now)
	}
}

func (g *Gauge) sample(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sampleLocked(now)
}

// sampleLocked reads the metrics; g.mu is held. The pressure is what the runtime holds minus
// what it could give back at once: free heap pages not yet returned to the system, and heap
// objects allocated since the last collection (mostly garbage). With a Go memory limit the
// heap grows towards it between collections and free pages are returned only when needed:
// neither is a reason to refuse work.
func (g *Gauge) sampleLocked(now time.Time) {
	metrics.Read(g.samples)
	v := func(i int) int64 {
		if g.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(g.samples[i].Value.Uint64())
	}
	total, released, objects, live, free := v(0), v(1), v(2), v(3), v(4)
	inUse := max(total-released, 0)
	pressed := inUse - free
	if live > 0 && objects > live {
		pressed -= objects - live
	}
	g.inUse.Store(inUse)
	g.pressed.Store(max(pressed, 0))
	g.next.Store(now.Add(SampleEvery).UnixNano())
	if g.nearAt > 0 && pressed >= g.nearAt && now.UnixNano()-g.lastGC.Load() >= int64(CollectEvery) && g.collecting.CompareAndSwap(false, true) {
		g.lastGC.Store(now.UnixNano())
		go func() {
			defer g.collecting.Store(false)
			runtime.GC()
		}()
	}
}
