package metrics

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// sampleRegistry builds a registry exercising every kind of metric and the escaping rules.
func sampleRegistry() *Registry {
	r := NewRegistry()
	req := r.Counter("keel_http_requests_total", "HTTP requests served, by route and code.", "route", "code")
	req.With("/shared-files", "200").Add(3)
	req.With("/remote-run", "403").Inc()
	req.With("/shared-files", "404").Inc()
	req.With("/shared-files", "200").Inc()

	r.Counter("keel_forward_dropped_total", "Forward jobs dropped after a definitive refusal.")

	q := r.Gauge("keel_queue_depth", "Forward jobs waiting.\nPer next hop.", "next_hop")
	q.With("relay1").Set(12)
	q.With("relay1").Add(-2)
	q.With(`we"ird\hop` + "\n").Set(0.5)

	r.Gauge("keel_ready", `1 when ready, \ else 0.`).With().Set(1)
	r.GaugeFunc("keel_node_map_nodes", "Nodes in the loaded node map.", func() float64 { return 100000 })
	r.GaugeFunc("keel_store_free_ratio", "Free disk ratio.", func() float64 { return math.NaN() })

	h := r.Histogram("keel_put_seconds", "Shared-file PUT duration.", []float64{0.01, 0.1, 1, math.Inf(1)}, "result")
	for _, v := range []float64{0.005, 0.01, 0.05, 0.5, 3} {
		h.With("stored").Observe(v)
	}
	h.With("forwarded").Observe(math.Inf(1))
	r.Histogram("keel_empty_seconds", "A histogram without observations.", []float64{1, 2})

	r.Counter("keel_unused_total", "A label vector never used is not written.", "x")
	return r
}

func TestWriteTextGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleRegistry().WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "sample.prom")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got := buf.String(); got != string(want) {
		t.Errorf("WriteText output differs from %s (go test -update rewrites it):\n%s", golden, got)
	}
}

func TestValues(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("c_total", "c", "a").With("x")
	c.Add(1.5)
	c.Inc()
	if c.Value() != 2.5 {
		t.Errorf("counter = %v, want 2.5", c.Value())
	}
	if r.Counter("d_total", "d", "a").With("y") == nil {
		t.Fatal("nil counter")
	}
	cv := r.Counter("e_total", "e", "a")
	first, again, other := cv.With("same"), cv.With("same"), cv.With("other")
	if first != again || first == other {
		t.Error("With does not return one counter per label set")
	}
	g := r.Gauge("g", "g").With()
	g.Set(3)
	g.Add(-4.5)
	if g.Value() != -1.5 {
		t.Errorf("gauge = %v, want -1.5", g.Value())
	}
}

func TestLabelKeyIsUnambiguous(t *testing.T) {
	r := NewRegistry()
	v := r.Counter("k_total", "k", "a", "b")
	if v.With("a", "bc") == v.With("ab", "c") {
		t.Error("label sets (a, bc) and (ab, c) share a counter")
	}
}

func TestHistogramBuckets(t *testing.T) {
	r := NewRegistry()
	h := r.Histogram("h_seconds", "h", []float64{1, 2}).With()
	for _, v := range []float64{-1, 1, 1.0000001, 2, 2.5, math.NaN()} {
		h.Observe(v)
	}
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	want := `# HELP h_seconds h
# TYPE h_seconds histogram
h_seconds_bucket{le="1"} 2
h_seconds_bucket{le="2"} 4
h_seconds_bucket{le="+Inf"} 6
h_seconds_sum NaN
h_seconds_count 6
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestPanics(t *testing.T) {
	tests := []struct {
		name string
		f    func(r *Registry)
		want string
	}{
		{"bad metric name", func(r *Registry) { r.Counter("1bad", "h") }, `metrics: invalid metric name "1bad"`},
		{"bad metric name char", func(r *Registry) { r.Gauge("a-b", "h") }, `metrics: invalid metric name "a-b"`},
		{"empty name", func(r *Registry) { r.GaugeFunc("", "h", func() float64 { return 0 }) }, `metrics: invalid metric name ""`},
		{"nil gauge function", func(r *Registry) { r.GaugeFunc("a", "h", nil) }, `metrics: a: nil gauge function`},
		{"bad label name", func(r *Registry) { r.Counter("a", "h", "a:b") }, `metrics: a: invalid label name "a:b"`},
		{"reserved label name", func(r *Registry) { r.Counter("a", "h", "__x") }, `metrics: a: invalid label name "__x"`},
		{"le on a histogram", func(r *Registry) { r.Histogram("a", "h", []float64{1}, "le") }, `metrics: a: invalid label name "le"`},
		{"duplicate label", func(r *Registry) { r.Counter("a", "h", "x", "y", "x") }, `metrics: a: duplicate label names ["x" "y" "x"]`},
		{"registered twice", func(r *Registry) { r.Counter("a", "h"); r.Gauge("a", "h") }, `metrics: a registered twice`},
		{"bad buckets", func(r *Registry) { r.Histogram("a", "h", []float64{1, 1}) }, `metrics: a: buckets must be finite and strictly increasing: [1 1]`},
		{"NaN bucket", func(r *Registry) { r.Histogram("a", "h", []float64{math.NaN()}) }, `metrics: a: buckets must be finite and strictly increasing: [NaN]`},
		{"too few labels", func(r *Registry) { r.Counter("a", "h", "x", "y").With("1") }, `metrics: a: got 1 label values, want 2 (["x" "y"])`},
		{"too many labels", func(r *Registry) { r.Gauge("a", "h").With("1") }, `metrics: a: got 1 label values, want 0 ([])`},
		{"counter decrease", func(r *Registry) { r.Counter("a", "h").With().Add(-1) }, `metrics: counter decreased by -1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				got := recover()
				if got != tt.want {
					t.Errorf("panic = %v, want %q", got, tt.want)
				}
			}()
			tt.f(NewRegistry())
		})
	}
}

func TestHandler(t *testing.T) {
	r := NewRegistry()
	r.Counter("a_total", "a").With().Inc()
	h := r.Handler()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("GET: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	want := "# HELP a_total a\n# TYPE a_total counter\na_total 1\n"
	if rec.Body.String() != want {
		t.Errorf("GET body %q, want %q", rec.Body.String(), want)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/metrics", nil))
	if rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != strconv.Itoa(len(want)) {
		t.Errorf("HEAD: %d, body %q, Content-Length %q", rec.Code, rec.Body.String(), rec.Header().Get("Content-Length"))
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/metrics", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteTextError(t *testing.T) {
	err := sampleRegistry().WriteText(failWriter{})
	if err == nil || err.Error() != "write metrics: disk full" {
		t.Errorf("err = %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("c_total", "c", "worker")
	g := r.Gauge("g", "g", "worker")
	h := r.Histogram("h", "h", []float64{1, 10}, "worker")
	const workers, n = 8, 2000
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() { // a scraper running alongside
		for {
			select {
			case <-done:
				return
			default:
				var buf bytes.Buffer
				if err := r.WriteText(&buf); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := []string{"even", "odd"}[w%2]
			for i := range n {
				c.With(name).Inc()
				c.With("all").Add(0.5)
				g.With("all").Add(1)
				h.With(name).Observe(float64(i % 20))
			}
		}()
	}
	wg.Wait()
	close(done)
	if got := c.With("all").Value(); got != workers*n*0.5 {
		t.Errorf("counter all = %v, want %v", got, workers*n*0.5)
	}
	if got := c.With("even").Value() + c.With("odd").Value(); got != workers*n {
		t.Errorf("counters even+odd = %v, want %v", got, workers*n)
	}
	if got := g.With("all").Value(); got != workers*n {
		t.Errorf("gauge = %v, want %v", got, workers*n)
	}
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`h_count{worker="even"} 8000`, `h_bucket{worker="odd",le="1"} 800`, `h_sum{worker="even"} 76000`} {
		if !strings.Contains(buf.String(), line+"\n") {
			t.Errorf("output lacks %q:\n%s", line, buf.String())
		}
	}
}

func BenchmarkCounterInc(b *testing.B) {
	c := NewRegistry().Counter("c_total", "c", "route").With("/x")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Inc()
		}
	})
}
