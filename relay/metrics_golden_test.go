//go:build linux

package relay_test

import (
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/relaytest"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

// maskedLabels are the label values that change from build to build or machine to machine.
var maskedLabels = regexp.MustCompile(`(version|commit|goversion)="[^"]*"`)

// maskMetrics keeps of a /metrics text its HELP and TYPE lines and each series' name and
// labels, without values: what the golden file pins (names, types, help, series present at
// start).
func maskMetrics(text string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(strings.TrimSuffix(text, "\n"), "\n") {
		if !strings.HasPrefix(line, "#") {
			if i := strings.LastIndexByte(line, ' '); i > 0 {
				line = line[:i]
			}
			line = maskedLabels.ReplaceAllString(line, `$1="*"`)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestMetricsGolden pins the series of a freshly started relay: names, types, help, and the
// labelled series exported at 0 before their first event (testdata/metrics.golden;
// go test ./relay -run TestMetricsGolden -update rewrites it). HEAD /metrics answers 200
// without a body.
func TestMetricsGolden(t *testing.T) {
	self := relaytest.NewNode("relay1", "root", 0)
	node := relaytest.NewNode("node1", "relay1", 1)
	// A relay (not a root) with its upstream down: every package's series, agent uploads and
	// their delivery included.
	r := startRelay(t, "relay1", relaytest.NodeMap(self, node), func(c *config.Config) {
		c.Role = config.RoleRelay
		c.Upstream = "http://" + relaytest.DownAddr(t)
	})

	// One relay API request: keel_http_requests_total's code label is no fixed set, so its
	// series show from a first request on.
	if a := do(t, http.MethodGet, r.URL+"/rudder/relay-api/1/system/status", nil, nil); a.code != http.StatusOK {
		t.Fatalf("system/status: %d", a.code)
	}
	got := maskMetrics(metricsText(t, r))
	golden := filepath.Join("testdata", "metrics.golden")
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./relay -run TestMetricsGolden -update creates it)", err)
	}
	if got != string(want) {
		t.Errorf("/metrics differs from %s (-update rewrites it); got:\n%s", golden, got)
	}

	a := do(t, http.MethodHead, r.Admin+"/metrics", nil, nil)
	if a.code != http.StatusOK || len(a.body) != 0 {
		t.Errorf("HEAD /metrics: %d with %d body bytes, want 200 and none", a.code, len(a.body))
	}
}

// seriesNames returns the sample names of a golden file (histograms' _bucket, _sum, _count).
func seriesNames(t *testing.T, golden string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		names[name] = true
	}
	return names
}

var (
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	ours       = regexp.MustCompile(`^(keel_|rudder_relayd_|go_|process_)`)
)

// exprSeries returns the metric names of ours that a PromQL expression uses.
func exprSeries(expr string) []string {
	var names []string
	for _, id := range identifier.FindAllString(quoted.ReplaceAllString(expr, `""`), -1) {
		if ours.MatchString(id) {
			names = append(names, id)
		}
	}
	return names
}

// TestMonitoringUsesKnownSeries checks that the alert rules and the Grafana dashboard
// shipped in packaging/monitoring/ parse and use only series a relay exports (the golden
// file); CI also runs promtool check rules on the rules (packaging/monitoring/check-rules.sh).
func TestMonitoringUsesKnownSeries(t *testing.T) {
	known := seriesNames(t, filepath.Join("testdata", "metrics.golden"))
	check := func(where, expr string) {
		if strings.TrimSpace(expr) == "" {
			t.Errorf("%s: empty expression", where)
		}
		for _, name := range exprSeries(expr) {
			if !known[name] {
				t.Errorf("%s: %s is not a series of keel-relay (testdata/metrics.golden)", where, name)
			}
		}
	}

	b, err := os.ReadFile(filepath.Join("..", "packaging", "monitoring", "keel-relay.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("rules: %v", err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %q of group %s: wants alert, labels.severity and annotations.summary", r.Alert, g.Name)
			}
			check("rule "+r.Alert, r.Expr)
		}
	}
	if n == 0 {
		t.Error("no alert rules")
	}

	b, err = os.ReadFile(filepath.Join("..", "packaging", "monitoring", "keel-relay.dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	targets := 0
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			targets++
			check("dashboard panel "+p.Title, tg.Expr)
		}
	}
	if dash.UID == "" || targets == 0 {
		t.Errorf("dashboard: uid %q, %d queries", dash.UID, targets)
	}
}

func TestExprSeries(t *testing.T) {
	tests := []struct{ expr, want string }{
		{`keel_store_free_bytes < keel_store_reserve_bytes`, "keel_store_free_bytes keel_store_reserve_bytes"},
		{`sum by (route) (rate(keel_http_requests_total{code=~"5..",route="keel_fake_total"}[5m]))`, "keel_http_requests_total"},
		{`up{job="keel-relay"} == 0`, ""},
		{`time() - process_start_time_seconds > 3600`, "process_start_time_seconds"},
	}
	for _, tt := range tests {
		if got := strings.Join(exprSeries(tt.expr), " "); got != tt.want {
			t.Errorf("exprSeries(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

// TestOperatorSeries checks the operator series against what the relay does: a file queued
// for a down upstream ages, a reload and a cleaner run stamp their time, free space and the
// reserve are measured.
func TestOperatorSeries(t *testing.T) {
	t.Parallel()
	self := relaytest.NewNode("relay1", "root", 0)
	mine := relaytest.NewNode("n1", "relay1", 1)
	start := float64(time.Now().Unix())
	r := startRelay(t, "relay1", relaytest.NodeMap(self, mine), func(c *config.Config) {
		c.Role = config.RoleRelay
		c.Upstream = "http://" + relaytest.DownAddr(t)
	})
	m := metricsText(t, r)
	for series, want := range map[string]float64{
		"keel_forward_queue_oldest_age_seconds":       0,
		"keel_forward_last_success_timestamp_seconds": 0,
		"keel_last_reload_success_timestamp_seconds":  0,
		"rudder_relayd_managed_nodes_total":           1,
	} {
		if got := metricValue(t, m, series); got != want {
			t.Errorf("at start, %s = %v, want %v", series, got, want)
		}
	}
	if free, reserve := metricValue(t, m, "keel_store_free_bytes"), metricValue(t, m, "keel_store_reserve_bytes"); free <= 0 || reserve <= 0 {
		t.Errorf("keel_store_free_bytes %v, keel_store_reserve_bytes %v: want both > 0", free, reserve)
	}

	a := put(t, r, "/shared-files/far/n1/f1?ttl=1h", relaytest.SignedBody(t, mine, []byte("for far"), ""))
	if a.code != http.StatusOK {
		t.Fatalf("PUT for a node above: %d %s\n%s", a.code, a.body, r.LogText())
	}
	waitFor(t, "the queued file to age", 10*time.Second, func() bool {
		return metricValue(t, metricsText(t, r), "keel_forward_queue_oldest_age_seconds") > 0
	})

	if a := do(t, http.MethodPost, r.URL+"/rudder/relay-api/1/system/reload", nil, nil); a.code != http.StatusOK {
		t.Fatalf("reload: %d %s", a.code, a.body)
	}
	if got := metricValue(t, metricsText(t, r), "keel_last_reload_success_timestamp_seconds"); got < start {
		t.Errorf("after a reload, keel_last_reload_success_timestamp_seconds = %v, want >= %v", got, start)
	}
	waitFor(t, "a cleaner run", 10*time.Second, func() bool {
		return metricValue(t, metricsText(t, r), "keel_cleaner_last_success_timestamp_seconds") >= start
	})
}
