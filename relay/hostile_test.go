package relay_test

// Tests of what an unauthenticated or refused peer can make the relay keep: metric series
// and access to /metrics (issue 12, findings 3 and 8).

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/relaytest"
)

// TestOddMethodsMakeNoSeries sends thousands of requests with distinct made-up methods, over
// real connections from loopback and in process from a refused peer: the request counter
// keeps a fixed set of method labels.
func TestOddMethodsMakeNoSeries(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	r := startRelay(t, "root", relaytest.NodeMap(root), nil)

	conn, err := net.Dial("tcp", strings.TrimPrefix(r.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 2000
	go func() {
		w := bufio.NewWriter(conn)
		for i := range n {
			fmt.Fprintf(w, "M%06d /nowhere/%d HTTP/1.1\r\nHost: x\r\n\r\n", i, i)
		}
		_ = w.Flush()
	}()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	for i := range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("answer %d: %d, want 404", i, resp.StatusCode)
		}
	}
	api := r.APIHandler()
	for i := range n {
		req := httptest.NewRequest("GET", "/nowhere", nil)
		req.Method = fmt.Sprintf("R%06d", i)
		req.RemoteAddr = "198.51.100.7:40000"
		w := httptest.NewRecorder()
		api.ServeHTTP(w, req)
		if w.Code != http.StatusForbidden {
			t.Fatalf("refused peer: %d, want 403", w.Code)
		}
	}

	m := metricsText(t, r)
	if got := strings.Count(m, "method=\"other\",route=\"other\"} "); got != 2 {
		t.Errorf("keel_http_requests_total has %d series for route other after %d odd methods, want 2 (404 and 403)", got, 2*n)
	}
	for series, want := range map[string]float64{
		`keel_http_requests_total{code="404",method="other",route="other"}`: n,
		`keel_http_requests_total{code="403",method="other",route="other"}`: n,
	} {
		if got := metricValue(t, m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// TestMetricsNetworks: /metrics answers only loopback and the peers of admin.metrics_networks;
// the rest of the admin listener answers only loopback.
func TestMetricsNetworks(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	const (
		outsider   = "198.51.100.7:40000"
		prometheus = "192.0.2.10:40000"
	)
	for _, tc := range []struct {
		name     string
		networks []string
		codes    map[string]int // peer -> status
	}{
		{"default", nil, map[string]int{outsider: 403, prometheus: 403, "127.0.0.1:40000": 200, "[::1]:40000": 200}},
		{"a scraper's network", []string{"192.0.2.0/24"}, map[string]int{outsider: 403, prometheus: 200, "127.0.0.1:40000": 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRelay(t, "root", relaytest.NodeMap(root), func(c *config.Config) {
				if tc.networks != nil {
					c.Admin.MetricsNetworks = tc.networks
				}
			})
			admin := r.AdminHandler()
			for peer, code := range tc.codes {
				req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				req.RemoteAddr = peer
				w := httptest.NewRecorder()
				admin.ServeHTTP(w, req)
				if w.Code != code {
					t.Errorf("/metrics from %s: %d, want %d", peer, w.Code, code)
				}
				if code == http.StatusOK && !strings.Contains(w.Body.String(), "keel_build_info") {
					t.Errorf("/metrics from %s: no metrics in the answer", peer)
				}
				if code == http.StatusForbidden && strings.Contains(w.Body.String(), "keel_") {
					t.Errorf("/metrics from %s: refused but the body holds metrics", peer)
				}
			}
			// The rest of the admin API stays loopback only, whatever metrics_networks says.
			req := httptest.NewRequest(http.MethodGet, "/status", nil)
			req.RemoteAddr = prometheus
			w := httptest.NewRecorder()
			admin.ServeHTTP(w, req)
			if w.Code != http.StatusForbidden {
				t.Errorf("admin /status from %s: %d, want 403", prometheus, w.Code)
			}
		})
	}
}
