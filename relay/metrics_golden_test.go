//go:build linux

package relay_test

import (
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
