//go:build linux

package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseHey(t *testing.T) {
	for _, tc := range []struct {
		file          string
		rps           float64
		p50, p99      time.Duration
		statuses      map[int]int
		errors        int
		errorContains string
	}{
		{"hey-ok.txt", 27142.5376, 1000 * time.Microsecond, 8200 * time.Microsecond, map[int]int{200: 640}, 0, ""},
		{"hey-404.txt", 19038.0166, 1600 * time.Microsecond, 5600 * time.Microsecond, map[int]int{404: 200}, 0, ""},
		{"hey-refused.txt", 32960.6473, 0, 0, map[int]int{}, 100, "connection refused"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			res, err := parseHey(readTestdata(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if res.ReqPerSec != tc.rps || res.P50 != tc.p50 || res.P99 != tc.p99 || res.Errors != tc.errors {
				t.Errorf("got %.4f req/s, p50 %s, p99 %s, %d errors; want %.4f, %s, %s, %d",
					res.ReqPerSec, res.P50, res.P99, res.Errors, tc.rps, tc.p50, tc.p99, tc.errors)
			}
			if len(res.Statuses) != len(tc.statuses) {
				t.Errorf("statuses %v, want %v", res.Statuses, tc.statuses)
			}
			for code, n := range tc.statuses {
				if res.Statuses[code] != n {
					t.Errorf("statuses %v, want %v", res.Statuses, tc.statuses)
				}
			}
			if tc.errorContains != "" && (len(res.ErrorLines) != 1 || !strings.Contains(res.ErrorLines[0], tc.errorContains)) {
				t.Errorf("error lines %q, want one containing %q", res.ErrorLines, tc.errorContains)
			}
		})
	}
}

// goodHey is a minimal summary with every figure the benchmark reads.
const goodHey = "\nSummary:\n  Total:\t1.5000 secs\n  Requests/sec:\t33333.3333\n\n" +
	"Latency distribution:\n  50% in 0.0014 secs\n  99% in 0.0065 secs\n\n" +
	"Status code distribution:\n  [200]\t50000 responses\n"

func TestParseHeyGood(t *testing.T) {
	res, err := parseHey(goodHey)
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 1500*time.Millisecond || res.ReqPerSec != 33333.3333 || res.P50 != 1400*time.Microsecond ||
		res.P99 != 6500*time.Microsecond || res.Statuses[200] != 50000 {
		t.Errorf("got %+v", res)
	}
}

func TestParseHeyRefuses(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "hey output lacks 50%, 99%, Requests/sec, Total"},
		{"no percentiles", strings.ReplaceAll(goodHey, "% in", " at"), "hey output lacks 50%, 99%"},
		{"rate not a number", strings.Replace(goodHey, "33333.3333", "fast", 1),
			`hey output line 4 "Requests/sec:\tfast": "fast" is not a non-negative number`},
		{"NaN rate", strings.Replace(goodHey, "33333.3333", "NaN", 1), `hey output line 4 "Requests/sec:\tNaN": "NaN" is not a non-negative number`},
		{"negative total", strings.Replace(goodHey, "1.5000", "-1", 1), `hey output line 3 "Total:\t-1 secs": "-1" is not a non-negative number`},
		{"latency without unit", strings.Replace(goodHey, "0.0014 secs", "0.0014", 1), `hey output line 7 "50% in 0.0014": "0.0014" is not a duration in secs`},
		{"huge latency", strings.Replace(goodHey, "0.0065", "1e300", 1), `hey output line 8 "99% in 1e300 secs": "1e300": implausible duration`},
		{"status not a code", strings.Replace(goodHey, "[200]", "[ok]", 1), `hey output line 11 "[ok]\t50000 responses": status "ok" is not an HTTP status code`},
		{"status out of range", strings.Replace(goodHey, "[200]", "[42]", 1), `status "42" is not an HTTP status code`},
		{"status without count", strings.Replace(goodHey, "50000 responses", "many", 1), `no " responses" count`},
		{"status count not a number", strings.Replace(goodHey, "50000 responses", "x responses", 1), `count "x" is not a number of responses`},
		{"status line without bracket", strings.Replace(goodHey, "[200]\t", "200 ", 1), `not a status line`},
		{"error count not a number", goodHey + "\nError distribution:\n  [many]\tdial tcp: refused\n", `error count "many" is not a number`},
		{"error line without bracket", goodHey + "\nError distribution:\n  dial tcp: refused\n", `not an error line`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseHey(tc.in)
			if err == nil {
				t.Fatalf("parseHey accepted %q", tc.in)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func FuzzParseHey(f *testing.F) {
	for _, name := range []string{"hey-ok.txt", "hey-404.txt", "hey-refused.txt"} {
		f.Add(readTestdata(f, name))
	}
	f.Add(goodHey)
	f.Add("")
	f.Add("Summary:\n  Total:\tNaN secs\n")
	f.Add("Status code distribution:\n  [99999999999999999999]\t1 responses\n")
	f.Fuzz(func(t *testing.T, in string) {
		res, err := parseHey(in)
		if err != nil {
			return
		}
		if res.ReqPerSec < 0 || res.Total < 0 || res.P50 < 0 || res.P99 < 0 || res.Errors < 0 {
			t.Fatalf("negative figure from %q: %+v", in, res)
		}
		for code, n := range res.Statuses {
			if code < 100 || code > 999 || n < 0 {
				t.Fatalf("bad status %d ×%d from %q", code, n, in)
			}
		}
	})
}
