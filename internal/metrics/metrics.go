// Package metrics is Keel's thin layer over the Prometheus client library
// (github.com/prometheus/client_golang): one Registry per daemon instance, passed down to the
// packages that declare their series (never the library's global default registry, so that
// several relays live in one test process), helpers to declare label vectors and to
// pre-initialise their series at 0, and the /metrics handler (GET and HEAD).
//
// Declaring a metric with a bad or duplicate name, or asking for a series with the wrong
// number of label values, is a programming error and panics.
package metrics

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Counter is one counter series: Inc and Add (never negative) are lock-free.
type Counter = prometheus.Counter

// Gauge is one gauge series: Set, Add, Inc, Dec.
type Gauge = prometheus.Gauge

// Histogram is one histogram series: Observe.
type Histogram = prometheus.Observer

// Registry holds the metric families of one daemon instance and serves them.
type Registry struct {
	reg *prometheus.Registry
}

// NewRegistry returns a registry holding the Go runtime (go_*) and process (process_*)
// collectors.
func NewRegistry() *Registry {
	r := newBareRegistry()
	r.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return r
}

// newBareRegistry returns an empty registry (tests of the output format).
func newBareRegistry() *Registry {
	return &Registry{reg: prometheus.NewRegistry()}
}

// Gatherer gives the registry to code that reads it through the client library.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// checkNames panics on a metric or label name outside the classic character set
// ([a-zA-Z_:][a-zA-Z0-9_:]*, labels without ':', none starting "__"), which every scraper
// and query language version accepts, and on "le" or "quantile" as a label name.
func checkNames(name string, labelNames []string) {
	if !model.LegacyValidation.IsValidMetricName(name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", name))
	}
	for _, l := range labelNames {
		if !model.LegacyValidation.IsValidLabelName(l) || strings.HasPrefix(l, "__") || l == "le" || l == "quantile" {
			panic(fmt.Sprintf("metrics: %s: invalid label name %q", name, l))
		}
	}
}

// CounterVec is a counter family; With selects one series.
type CounterVec struct{ v *prometheus.CounterVec }

// Counter registers a counter family. Without label names, its single series is exported (at 0)
// from the start; with them, Init exports the known label values at 0.
func (r *Registry) Counter(name, help string, labelNames ...string) *CounterVec {
	checkNames(name, labelNames)
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labelNames)
	r.reg.MustRegister(v)
	if len(labelNames) == 0 {
		v.WithLabelValues()
	}
	return &CounterVec{v}
}

// With returns the counter for the given label values (in the order of the label names),
// creating it at 0 on first use. It panics if the number of values is wrong.
func (c *CounterVec) With(labelValues ...string) Counter { return c.v.WithLabelValues(labelValues...) }

// Init creates at 0 the series of every combination of the given label values, one list per
// label name in order, so that they are exported before their first event.
func (c *CounterVec) Init(values ...[]string) *CounterVec {
	cross(values, func(lv []string) { c.v.WithLabelValues(lv...) })
	return c
}

// GaugeVec is a gauge family; With selects one series.
type GaugeVec struct{ v *prometheus.GaugeVec }

// Gauge registers a gauge family. Without label names, its single series is exported (at 0)
// from the start; with them, Init exports the known label values at 0.
func (r *Registry) Gauge(name, help string, labelNames ...string) *GaugeVec {
	checkNames(name, labelNames)
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labelNames)
	r.reg.MustRegister(v)
	if len(labelNames) == 0 {
		v.WithLabelValues()
	}
	return &GaugeVec{v}
}

// With returns the gauge for the given label values, creating it at 0 on first use. It panics
// if the number of values is wrong.
func (g *GaugeVec) With(labelValues ...string) Gauge { return g.v.WithLabelValues(labelValues...) }

// Init creates at 0 the series of every combination of the given label values.
func (g *GaugeVec) Init(values ...[]string) *GaugeVec {
	cross(values, func(lv []string) { g.v.WithLabelValues(lv...) })
	return g
}

// GaugeFunc registers a gauge without labels whose value is f(), called at every scrape.
// f must be safe for concurrent use and must not block.
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	if f == nil {
		panic(fmt.Sprintf("metrics: %s: nil gauge function", name))
	}
	checkNames(name, nil)
	r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// HistogramVec is a histogram family; With selects one series.
type HistogramVec struct{ v *prometheus.HistogramVec }

// Histogram registers a histogram family with the given bucket upper bounds, which must be
// strictly increasing; a trailing +Inf is implied.
func (r *Registry) Histogram(name, help string, buckets []float64, labelNames ...string) *HistogramVec {
	checkNames(name, labelNames)
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labelNames)
	r.reg.MustRegister(v)
	if len(labelNames) == 0 {
		v.WithLabelValues()
	}
	return &HistogramVec{v}
}

// With returns the histogram for the given label values, creating it on first use. It panics
// if the number of values is wrong.
func (h *HistogramVec) With(labelValues ...string) Histogram {
	return h.v.WithLabelValues(labelValues...)
}

// Init creates empty the series of every combination of the given label values.
func (h *HistogramVec) Init(values ...[]string) *HistogramVec {
	cross(values, func(lv []string) { h.v.WithLabelValues(lv...) })
	return h
}

// cross calls f with every combination of values (one list per label, in order).
func cross(values [][]string, f func([]string)) {
	lv := make([]string, len(values))
	var walk func(i int)
	walk = func(i int) {
		if i == len(values) {
			f(lv)
			return
		}
		for _, v := range values[i] {
			lv[i] = v
			walk(i + 1)
		}
	}
	walk(0)
}

// Value returns the current value of one counter or gauge series (tests and status pages),
// or the sample count of a histogram.
func Value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return 0
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Histogram != nil:
		return float64(d.Histogram.GetSampleCount())
	}
	return 0
}

// WriteText writes every family in the Prometheus text exposition format 0.0.4, sorted by name,
// series sorted by label values.
func (r *Registry) WriteText(w io.Writer) error {
	mfs, err := r.reg.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("write metrics: %w", err)
		}
	}
	return nil
}

// Handler serves the registry in the Prometheus exposition format on GET and HEAD (the same
// status and headers, no body).
func (r *Registry) Handler() http.Handler {
	h := promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, req) // net/http drops the body of a HEAD answer
	})
}
