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
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// sampleRegistry builds a registry exercising every kind of metric, Init and the escaping rules.
func sampleRegistry() *Registry {
	r := newBareRegistry()
	req := r.Counter("keel_http_requests_total", "HTTP requests served, by route and code.", "route", "code")
	req.With("/shared-files", "200").Add(3)
	req.With("/remote-run", "403").Inc()
	req.With("/shared-files", "404").Inc()
	req.With("/shared-files", "200").Inc()

	r.Counter("keel_forward_dropped_total", "Forward jobs dropped after a definitive refusal.")
	r.Counter("keel_calls_total", "Known label values are exported at 0.", "mode", "result").
		Init([]string{"sync", "async"}, []string{"ok", "refused"})

	q := r.Gauge("keel_queue_depth", "Forward jobs waiting.\nPer next hop.", "next_hop")
	q.With("relay1").Set(12)
	q.With("relay1").Add(-2)
	q.With(`we"ird\hop` + "\n").Set(0.5)

	r.Gauge("keel_ready", `1 when ready, \ else 0.`).With().Set(1)
	r.GaugeFunc("keel_node_map_nodes", "Nodes in the loaded node map.", func() float64 { return 100000 })
	r.GaugeFunc("keel_store_free_ratio", "Free disk ratio.", func() float64 { return math.NaN() })

	h := r.Histogram("keel_put_seconds", "Shared-file PUT duration.", []float64{0.01, 0.1, 1}, "result")
	for _, v := range []float64{0.005, 0.01, 0.05, 0.5, 3} {
		h.With("stored").Observe(v)
	}
	h.With("forwarded").Observe(math.Inf(1))
	r.Histogram("keel_empty_seconds", "A histogram without observations.", []float64{1, 2})
	r.Histogram("keel_routes_seconds", "Histogram series initialised empty.", []float64{1}, "route").Init([]string{"a", "b"})

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

func TestRuntimeCollectors(t *testing.T) {
	var buf bytes.Buffer
	if err := NewRegistry().WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_start_time_seconds"} {
		if !strings.Contains(buf.String(), "\n"+name+" ") {
			t.Errorf("NewRegistry's output lacks %s", name)
		}
	}
}

func TestValues(t *testing.T) {
	r := newBareRegistry()
	c := r.Counter("c_total", "c", "a").With("x")
	c.Add(1.5)
	c.Inc()
	if Value(c) != 2.5 {
		t.Errorf("counter = %v, want 2.5", Value(c))
	}
	cv := r.Counter("e_total", "e", "a")
	cv.With("same").Inc()
	if Value(cv.With("same")) != 1 || Value(cv.With("other")) != 0 {
		t.Error("With does not return one counter per label set")
	}
	g := r.Gauge("g", "g").With()
	g.Set(3)
	g.Add(-4.5)
	if Value(g) != -1.5 {
		t.Errorf("gauge = %v, want -1.5", Value(g))
	}
	h := r.Histogram("h_seconds", "h", []float64{1}).With()
	h.Observe(0.5)
	h.Observe(2)
	if Value(h.(prometheus.Metric)) != 2 {
		t.Errorf("histogram count = %v, want 2", Value(h.(prometheus.Metric)))
	}
}

func TestCross(t *testing.T) {
	tests := []struct {
		name   string
		values [][]string
		want   []string
	}{
		{"none", nil, []string{""}},
		{"one label", [][]string{{"a", "b"}}, []string{"a", "b"}},
		{"two labels", [][]string{{"a", "b"}, {"1", "2"}}, []string{"a1", "a2", "b1", "b2"}},
		{"an empty list", [][]string{{"a"}, {}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			cross(tt.values, func(lv []string) { got = append(got, strings.Join(lv, "")) })
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPanics(t *testing.T) {
	tests := []struct {
		name string
		f    func(r *Registry)
	}{
		{"bad metric name", func(r *Registry) { r.Counter("1bad", "h") }},
		{"bad metric name char", func(r *Registry) { r.Gauge("a-b", "h") }},
		{"empty name", func(r *Registry) { r.GaugeFunc("", "h", func() float64 { return 0 }) }},
		{"nil gauge function", func(r *Registry) { r.GaugeFunc("a", "h", nil) }},
		{"bad label name", func(r *Registry) { r.Counter("a", "h", "a:b") }},
		{"reserved label name", func(r *Registry) { r.Counter("a", "h", "__x") }},
		{"le on a histogram", func(r *Registry) { r.Histogram("a", "h", []float64{1}, "le") }},
		{"duplicate label", func(r *Registry) { r.Counter("a", "h", "x", "y", "x") }},
		{"registered twice", func(r *Registry) { r.Counter("a", "h"); r.Gauge("a", "h") }},
		{"bad buckets", func(r *Registry) { r.Histogram("a", "h", []float64{1, 1}) }},
		{"too few labels", func(r *Registry) { r.Counter("a", "h", "x", "y").With("1") }},
		{"too many labels", func(r *Registry) { r.Gauge("a", "h").With("1") }},
		{"wrong Init arity", func(r *Registry) { r.Counter("a", "h", "x").Init([]string{"1"}, []string{"2"}) }},
		{"counter decrease", func(r *Registry) { r.Counter("a", "h").With().Add(-1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.f(newBareRegistry())
		})
	}
}

func TestHandler(t *testing.T) {
	r := newBareRegistry()
	r.Counter("a_total", "a").With().Inc()
	h := r.Handler()
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("GET: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	want := "# HELP a_total a\n# TYPE a_total counter\na_total 1\n"
	if body.String() != want {
		t.Errorf("GET body %q, want %q", body.String(), want)
	}

	resp, err = http.Head(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body.Reset()
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || body.Len() != 0 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("HEAD: %d, body %q, Content-Type %q", resp.StatusCode, body.String(), resp.Header.Get("Content-Type"))
	}

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/metrics", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteTextError(t *testing.T) {
	err := sampleRegistry().WriteText(failWriter{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("err = %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	r := newBareRegistry()
	c := r.Counter("c_total", "c", "worker")
	const workers, n = 8, 2000
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() { // a scraper running alongside
		for {
			select {
			case <-done:
				return
			default:
				if err := r.WriteText(&bytes.Buffer{}); err != nil {
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
			for range n {
				c.With(name).Inc()
			}
		}()
	}
	wg.Wait()
	close(done)
	if got := Value(c.With("even")) + Value(c.With("odd")); got != workers*n {
		t.Errorf("counters even+odd = %v, want %v", got, workers*n)
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
