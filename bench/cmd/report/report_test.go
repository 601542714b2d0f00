//go:build linux

package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// sampleReport is a report with one of each kind of row.
func sampleReport() *Report {
	r := &Report{
		Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Command: "make bench", Took: 93.4,
		Machine: Machine{NProc: 2, CPU: "Test CPU", GoVersion: "go1.26.8", OS: "linux", Arch: "amd64", Kernel: "6.1.0",
			MemTotalMiB: 24105, DataDir: "/tmp", DataFS: "ext4 on /dev/vda", LoadStart: "1.00 0.50 0.25", LoadEnd: "2.00 1.00 0.50"},
		Series: map[string][]Point{"expiry_disk_mib": {{T: 0, V: 1024}, {T: 1, V: 64.5}}},
		Notes:  []string{"A note."},
	}
	r.add(Scenario{Name: "put_vs_sha", Section: "PUT", Title: "PUT vs SHA-256", Unit: "MB/s", Command: "PUT it"}, 432.1).
		against("single-core SHA-256", 1800, "MB/s").goal("≥ 0.7× SHA-256", false)
	r.add(Scenario{Name: "head_rps", Section: "HEAD", Title: "HEAD requests/s", Unit: "req/s", Command: "hey"}, 25012.4).
		against("bare", 34000, "req/s").goal("≥ 0.5× bare handler", true)
	r.add(Scenario{Name: "rss", Section: "HEAD", Title: "RSS", Unit: "MiB", Command: "status", Note: "At rest."}, 17.43)
	r.Scenarios = append(r.Scenarios, Scenario{Name: "edge", Section: "Edge", Title: "edge streams", Command: "none",
		Note: "not measured (edge not built)"})
	return r
}

func TestReportGolden(t *testing.T) {
	r := sampleReport()
	js, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct {
		file string
		got  []byte
	}{{"report.golden.md", []byte(r.Markdown())}, {"report.golden.json", js}} {
		path := filepath.Join("testdata", g.file)
		if *update {
			if err := os.WriteFile(path, g.got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if !bytes.Equal(g.got, want) {
			t.Errorf("%s differs (run with -update after checking):\n%s", g.file, g.got)
		}
	}
}

func TestScenarioRatio(t *testing.T) {
	r := &Report{}
	s := r.add(Scenario{Name: "x"}, 50).against("limit", 200, "u")
	if s.Ratio == nil || *s.Ratio != 0.25 {
		t.Errorf("ratio %v, want 0.25", s.Ratio)
	}
	if s := r.add(Scenario{Name: "y"}, 50).against("zero limit", 0, "u"); s.Ratio != nil {
		t.Errorf("ratio %v against a zero limit, want none", *s.Ratio)
	}
}

func TestNum(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {0.0273, "0.0273"}, {1.234, "1.23"}, {12.34, "12.3"}, {123.4, "123"}, {999.6, "1,000"},
		{1234.5, "1,235"}, {1234567, "1,234,567"}, {-1234, "-1,234"}, {-0.5, "-0.5"},
	} {
		if got := num(tc.in); got != tc.want {
			t.Errorf("num(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestRelayConfigAccepted checks the relay's own config loader accepts, with the intended
// values, every config the benchmarks write.
func TestRelayConfigAccepted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   relayConfig
		check func(*config.Config) bool
	}{
		{"plain", relayConfig{dir: "/tmp/x"}, func(c *config.Config) bool {
			return c.DataDir == "/tmp/x/data" && c.Admin.Listen == "" && c.Log.Level == "warn" && c.HTTP.MaxBody == 1<<30
		}},
		{"uploads and cleanup", relayConfig{dir: "/tmp/x y", maxUploads: 128, cleanup: time.Second}, func(c *config.Config) bool {
			return c.DataDir == "/tmp/x y/data" && c.HTTP.MaxConcurrentUploads == 128 && c.HTTP.MaxUploadsPerClient == 128 && c.SharedFiles.CleanupInterval == time.Second
		}},
		{"plain, edge with default limits", relayConfig{dir: "/tmp/x", plain: true, edge: &edgeListeners{edge: "127.0.0.1:1", admin: "127.0.0.1:2"}},
			func(c *config.Config) bool {
				d := config.Default()
				return c.HTTP.MaxBody == d.HTTP.MaxBody && c.Edge.Enabled && c.Edge.Listen == "127.0.0.1:1" && c.Admin.Listen == "127.0.0.1:2" &&
					c.Edge.MaxStreams == d.Edge.MaxStreams && c.Edge.AttestPerMinute == d.Edge.AttestPerMinute
			}},
		{"edge for enrollment", relayConfig{dir: "/tmp/x", edge: &edgeListeners{edge: "127.0.0.1:1", admin: "127.0.0.1:2", streams: 2000}},
			func(c *config.Config) bool { return c.Edge.MaxStreams == 3000 && c.Edge.AttestPerMinute == 10000 }},
		{"remote run", relayConfig{dir: "/tmp/x", command: []string{"/bin/sleep", "0.2"}, concurrency: 32}, func(c *config.Config) bool {
			return reflect.DeepEqual(c.RemoteRun.Command, []string{"/bin/sleep", "0.2"}) && c.RemoteRun.Concurrency == 32
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.cfg.yaml("127.0.0.1:3030")
			c, err := config.LoadBytes([]byte(text), nil)
			if err != nil {
				t.Fatalf("config refused: %v\n%s", err, text)
			}
			if c.HTTP.Listen != "127.0.0.1:3030" || !tc.check(c) {
				t.Errorf("config not as intended:\n%s\n%+v", text, c)
			}
		})
	}
}
