package edged

import (
	"math"
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	b := NewBackoff(time.Second, time.Minute)
	wantCeil := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i, w := range wantCeil {
		if got := b.Ceiling(i + 1); got != w*time.Second {
			t.Errorf("Ceiling(%d) = %s, want %s", i+1, got, w*time.Second)
		}
	}
	if got := b.Ceiling(0); got != 0 {
		t.Errorf("Ceiling(0) = %s", got)
	}
	if got := b.Ceiling(1000); got != time.Minute {
		t.Errorf("Ceiling(1000) = %s (overflow?)", got)
	}
	for range 200 {
		b.Reset()
		for n := 1; n <= 12; n++ {
			d := b.Next()
			if d < 0 || d > b.Ceiling(n) {
				t.Fatalf("attempt %d: delay %s outside [0, %s]", n, d, b.Ceiling(n))
			}
			if b.Attempt() != n {
				t.Fatalf("Attempt() = %d, want %d", b.Attempt(), n)
			}
		}
	}
	zero := NewBackoff(0, time.Minute)
	if d := zero.Next(); d != 0 {
		t.Errorf("zero base: %s", d)
	}
}

// TestBackoffJitterSpread: full jitter spreads delays over [0, ceiling] (uniform: mean
// ceiling/2, standard deviation ceiling/√12), so agents do not reconnect in step.
func TestBackoffJitterSpread(t *testing.T) {
	const n = 4000
	ceil := 8 * time.Second
	var sum, sumSq float64
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	distinct := map[time.Duration]bool{}
	for range n {
		b := NewBackoff(time.Second, time.Minute) // a fresh agent each time
		var d time.Duration
		for range 4 {
			d = b.Next()
		}
		x := float64(d) / float64(ceil)
		sum += x
		sumSq += x * x
		lo, hi = min(lo, d), max(hi, d)
		distinct[d] = true
	}
	mean := sum / n
	sd := math.Sqrt(sumSq/n - mean*mean)
	t.Logf("attempt 4 over %d agents: min %s max %s mean %.3f·ceiling sd %.3f·ceiling", n, lo, hi, mean, sd)
	if math.Abs(mean-0.5) > 0.05 || math.Abs(sd-1/math.Sqrt(12)) > 0.03 {
		t.Errorf("mean %.3f sd %.3f: not uniform over [0, ceiling]", mean, sd)
	}
	if lo > ceil/20 || hi < ceil*19/20 || len(distinct) < n*9/10 {
		t.Errorf("min %s max %s distinct %d: poor spread", lo, hi, len(distinct))
	}
}

func TestBackoffReset(t *testing.T) {
	b := NewBackoff(100*time.Millisecond, 10*time.Second)
	for range 10 {
		b.Next()
	}
	if b.Attempt() != 10 {
		t.Fatalf("attempt %d", b.Attempt())
	}
	b.Reset()
	if b.Attempt() != 0 {
		t.Fatalf("attempt after reset %d", b.Attempt())
	}
	if d := b.Next(); d > 100*time.Millisecond {
		t.Errorf("first delay after reset %s > base", d)
	}
}
