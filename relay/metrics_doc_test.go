package relay_test

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keel-relay/keel/relay/relaytest"
)

// TestMetricsDocumented: every metric family a running relay serves on /metrics is in the
// table of docs/metrics.md (the runtime's own go_*, process_* and promhttp_* series aside), and
// the table names no family twice.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `([a-z_:][a-z0-9_:]*)` \\|")
	documented := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			if documented[m[1]] {
				t.Errorf("docs/metrics.md lists %s twice", m[1])
			}
			documented[m[1]] = true
		}
	}
	if len(documented) == 0 {
		t.Fatal("docs/metrics.md has no table of metrics")
	}

	r := relaytest.Start(t, relaytest.Config(t, t.TempDir(), "root", relaytest.NodeMap()))
	// One request, so that the request series exist.
	if resp, err := http.Get(r.URL + "/rudder/relay-api/1/system/status"); err == nil {
		resp.Body.Close()
	}
	resp, err := http.Get(r.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	served := 0
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		name := f[2]
		served++
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_") {
			continue
		}
		if !documented[name] {
			t.Errorf("/metrics serves %s, which docs/metrics.md does not list", name)
		}
	}
	if served == 0 {
		t.Fatalf("no metric families in /metrics:\n%s", body)
	}
}
