// Package metrics is a minimal metrics registry that writes the Prometheus text exposition
// format (version 0.0.4): counters, gauges, gauge functions and histograms, with labels.
//
// Registering a metric with a bad or duplicate name, or asking for a series with the wrong
// number of label values, is a programming error and panics.
package metrics

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds metric families and writes them out.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{families: map[string]*family{}}
}

// family is one metric name with its help, type and series.
type family struct {
	name       string
	help       string
	typ        string // "counter", "gauge" or "histogram"
	labelNames []string
	buckets    []float64      // histograms: upper bounds, without +Inf
	fn         func() float64 // gauge functions

	series sync.Map // label key -> *series

	// newSeries creates the value behind a new series.
	newSeries func() any
}

// series is one set of label values and its value (*Counter, *Gauge or *Histogram).
type series struct {
	labelValues []string
	value       any
}

func (r *Registry) register(f *family) {
	if !validName(f.name, true) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", f.name))
	}
	for _, l := range f.labelNames {
		if !validName(l, false) || strings.HasPrefix(l, "__") || (f.typ == "histogram" && l == "le") {
			panic(fmt.Sprintf("metrics: %s: invalid label name %q", f.name, l))
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(f.labelNames)))) != len(f.labelNames) {
		panic(fmt.Sprintf("metrics: %s: duplicate label names %q", f.name, f.labelNames))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.families[f.name]; ok {
		panic(fmt.Sprintf("metrics: %s registered twice", f.name))
	}
	r.families[f.name] = f
	if len(f.labelNames) == 0 && f.newSeries != nil {
		f.with(nil) // a metric without labels is exported from the start
	}
}

// with returns the value for labelValues, creating it on first use.
func (f *family) with(labelValues []string) any {
	if len(labelValues) != len(f.labelNames) {
		panic(fmt.Sprintf("metrics: %s: got %d label values, want %d (%q)",
			f.name, len(labelValues), len(f.labelNames), f.labelNames))
	}
	key := labelKey(labelValues)
	if s, ok := f.series.Load(key); ok {
		return s.(*series).value
	}
	s, _ := f.series.LoadOrStore(key, &series{labelValues: slices.Clone(labelValues), value: f.newSeries()})
	return s.(*series).value
}

// labelKey joins label values unambiguously.
func labelKey(values []string) string {
	var b strings.Builder
	for _, v := range values {
		b.WriteString(strconv.Itoa(len(v)))
		b.WriteByte(':')
		b.WriteString(v)
	}
	return b.String()
}

// validName checks a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or label name ([a-zA-Z_][a-zA-Z0-9_]*).
func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || colon && c == ':' ||
			i > 0 && c >= '0' && c <= '9'
		if !ok {
			return false
		}
	}
	return true
}

// atomicFloat is a float64 updated atomically through its bits.
type atomicFloat struct{ bits atomic.Uint64 }

func (a *atomicFloat) load() float64   { return math.Float64frombits(a.bits.Load()) }
func (a *atomicFloat) store(v float64) { a.bits.Store(math.Float64bits(v)) }
func (a *atomicFloat) add(v float64) {
	for {
		old := a.bits.Load()
		if a.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// CounterVec is a counter family; With selects one series.
type CounterVec struct{ f *family }

// Counter is a monotonically increasing value. Its methods are lock-free.
type Counter struct{ v atomicFloat }

// Counter registers a counter family. Without label names, its single series is exported (at 0)
// from the start.
func (r *Registry) Counter(name, help string, labelNames ...string) *CounterVec {
	f := &family{name: name, help: help, typ: "counter", labelNames: labelNames,
		newSeries: func() any { return new(Counter) }}
	r.register(f)
	return &CounterVec{f}
}

// With returns the counter for the given label values (in the order of the label names),
// creating it at 0 on first use. It panics if the number of values is wrong.
func (c *CounterVec) With(labelValues ...string) *Counter { return c.f.with(labelValues).(*Counter) }

// Add adds v, which must not be negative (it panics otherwise: counters only go up).
func (c *Counter) Add(v float64) {
	if v < 0 {
		panic(fmt.Sprintf("metrics: counter decreased by %v", v))
	}
	c.v.add(v)
}

// Inc adds 1.
func (c *Counter) Inc() { c.v.add(1) }

// Value returns the current value.
func (c *Counter) Value() float64 { return c.v.load() }

// GaugeVec is a gauge family; With selects one series.
type GaugeVec struct{ f *family }

// Gauge is a value that goes up and down. Its methods are lock-free.
type Gauge struct{ v atomicFloat }

// Gauge registers a gauge family. Without label names, its single series is exported (at 0)
// from the start.
func (r *Registry) Gauge(name, help string, labelNames ...string) *GaugeVec {
	f := &family{name: name, help: help, typ: "gauge", labelNames: labelNames,
		newSeries: func() any { return new(Gauge) }}
	r.register(f)
	return &GaugeVec{f}
}

// With returns the gauge for the given label values, creating it at 0 on first use. It panics
// if the number of values is wrong.
func (g *GaugeVec) With(labelValues ...string) *Gauge { return g.f.with(labelValues).(*Gauge) }

// Set sets the value.
func (g *Gauge) Set(v float64) { g.v.store(v) }

// Add adds v (which may be negative).
func (g *Gauge) Add(v float64) { g.v.add(v) }

// Value returns the current value.
func (g *Gauge) Value() float64 { return g.v.load() }

// GaugeFunc registers a gauge without labels whose value is f(), called at every scrape.
// f must be safe for concurrent use and must not block.
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	if f == nil {
		panic(fmt.Sprintf("metrics: %s: nil gauge function", name))
	}
	r.register(&family{name: name, help: help, typ: "gauge", fn: f})
}

// HistogramVec is a histogram family; With selects one series.
type HistogramVec struct{ f *family }

// Histogram counts observations in buckets. Observe is lock-free.
type Histogram struct {
	upper  []float64       // shared with the family
	counts []atomic.Uint64 // per bucket, not cumulative; the last one is +Inf
	sum    atomicFloat
}

// Histogram registers a histogram family with the given bucket upper bounds, which must be
// strictly increasing; a trailing +Inf is implied (and dropped if given).
func (r *Registry) Histogram(name, help string, buckets []float64, labelNames ...string) *HistogramVec {
	b := slices.Clone(buckets)
	if n := len(b); n > 0 && math.IsInf(b[n-1], 1) {
		b = b[:n-1]
	}
	for i, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) || i > 0 && v <= b[i-1] {
			panic(fmt.Sprintf("metrics: %s: buckets must be finite and strictly increasing: %v", name, buckets))
		}
	}
	f := &family{name: name, help: help, typ: "histogram", labelNames: labelNames, buckets: b}
	f.newSeries = func() any { return &Histogram{upper: b, counts: make([]atomic.Uint64, len(b)+1)} }
	r.register(f)
	return &HistogramVec{f}
}

// With returns the histogram for the given label values, creating it on first use. It panics
// if the number of values is wrong.
func (h *HistogramVec) With(labelValues ...string) *Histogram {
	return h.f.with(labelValues).(*Histogram)
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i, _ := slices.BinarySearch(h.upper, v) // first bucket with upper bound >= v; NaN lands in +Inf
	if math.IsNaN(v) {
		i = len(h.upper)
	}
	h.counts[i].Add(1)
	h.sum.add(v)
}

// WriteText writes every family in the Prometheus text exposition format 0.0.4, sorted by name,
// series sorted by label values. Label vectors with no series yet are left out.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	fams := make([]*family, 0, len(r.families))
	for _, f := range r.families {
		fams = append(fams, f)
	}
	r.mu.Unlock()
	slices.SortFunc(fams, func(a, b *family) int { return strings.Compare(a.name, b.name) })

	var buf bytes.Buffer
	for _, f := range fams {
		f.write(&buf)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}

// write appends the family to buf.
func (f *family) write(buf *bytes.Buffer) {
	var all []*series
	if f.fn == nil {
		f.series.Range(func(_, s any) bool {
			all = append(all, s.(*series))
			return true
		})
		if len(all) == 0 {
			return
		}
		slices.SortFunc(all, func(a, b *series) int { return slices.Compare(a.labelValues, b.labelValues) })
	}
	fmt.Fprintf(buf, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.typ)
	if f.fn != nil {
		sample(buf, f.name, nil, nil, "", "", f.fn())
		return
	}
	for _, s := range all {
		switch v := s.value.(type) {
		case *Counter:
			sample(buf, f.name, f.labelNames, s.labelValues, "", "", v.Value())
		case *Gauge:
			sample(buf, f.name, f.labelNames, s.labelValues, "", "", v.Value())
		case *Histogram:
			var cum uint64
			for i := range v.counts {
				cum += v.counts[i].Load()
				le := "+Inf"
				if i < len(v.upper) {
					le = formatFloat(v.upper[i])
				}
				sample(buf, f.name+"_bucket", f.labelNames, s.labelValues, "le", le, float64(cum))
			}
			sample(buf, f.name+"_sum", f.labelNames, s.labelValues, "", "", v.sum.load())
			sample(buf, f.name+"_count", f.labelNames, s.labelValues, "", "", float64(cum))
		}
	}
}

// sample writes one sample line; extraName/extraValue is an additional label (le) when set.
func sample(buf *bytes.Buffer, name string, labelNames, labelValues []string, extraName, extraValue string, v float64) {
	buf.WriteString(name)
	if len(labelNames) > 0 || extraName != "" {
		buf.WriteByte('{')
		for i, l := range labelNames {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(l)
			buf.WriteString(`="`)
			buf.WriteString(escapeLabel(labelValues[i]))
			buf.WriteByte('"')
		}
		if extraName != "" {
			if len(labelNames) > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(extraName)
			buf.WriteString(`="`)
			buf.WriteString(extraValue)
			buf.WriteByte('"')
		}
		buf.WriteByte('}')
	}
	buf.WriteByte(' ')
	buf.WriteString(formatFloat(v))
	buf.WriteByte('\n')
}

// formatFloat formats a sample value or bucket bound as Prometheus expects.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// escapeHelp escapes a HELP text: backslash and newline.
func escapeHelp(s string) string { return escape(s, false) }

// escapeLabel escapes a label value: backslash, double quote and newline.
func escapeLabel(s string) string { return escape(s, true) }

func escape(s string, quote bool) string {
	if !strings.ContainsAny(s, "\\\n\"") {
		return s
	}
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '"' && quote:
			b.WriteString(`\"`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Handler serves the registry in the Prometheus text format on GET and HEAD.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var buf bytes.Buffer
		_ = r.WriteText(&buf) // writing to a bytes.Buffer does not fail
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		if req.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(buf.Bytes())
	})
}
