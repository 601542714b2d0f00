package membudget

import (
	"runtime"
	"testing"
	"time"
)

func TestGauge(t *testing.T) {
	g := NewGauge(1) // any process is above one byte
	if !g.Near() {
		t.Error("a gauge at 1 byte is not near")
	}
	if g.lastGC.Load() == 0 {
		t.Error("a gauge near its threshold asked for no collection")
	}
	if g.InUse() <= 0 {
		t.Errorf("InUse = %d", g.InUse())
	}
	if NewGauge(0).Near() || NewGauge(-1).Near() {
		t.Error("a gauge without a threshold is near")
	}
	if NewGauge(1 << 50).Near() {
		t.Error("a gauge at 1 PiB is near")
	}
	var p Pressure = Never{}
	if p.Near() {
		t.Error("Never is near")
	}
}

// TestGaugeFollowsLiveMemory: memory kept alive raises what the gauge sees (after the sample
// interval); garbage collected does not count.
func TestGaugeFollowsLiveMemory(t *testing.T) {
	runtime.GC()
	g := NewGauge(1 << 50)
	time.Sleep(SampleEvery + 10*time.Millisecond)
	g.Near()
	before := g.pressed.Load()
	keep := make([][]byte, 0, 64)
	for range 64 {
		b := make([]byte, 1<<20)
		b[0] = 1
		keep = append(keep, b)
	}
	runtime.GC()
	time.Sleep(SampleEvery + 10*time.Millisecond)
	g.Near()
	after := g.pressed.Load()
	if after-before < 48<<20 {
		t.Errorf("64 MiB kept alive moved the gauge by %s only", FormatBytes(after-before))
	}
	runtime.KeepAlive(keep)
}

// BenchmarkGaugeNear: what a Near costs (most calls read the cached sample).
func BenchmarkGaugeNear(b *testing.B) {
	g := NewGauge(1 << 50)
	for b.Loop() {
		g.Near()
	}
}
