//go:build linux

package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseKeyValues(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]int64
		err      string
	}{
		{"v1 oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", map[string]int64{"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 3}, ""},
		{"v2 events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n",
			map[string]int64{"low": 0, "high": 0, "max": 12, "oom": 2, "oom_kill": 1, "oom_group_kill": 0}, ""},
		{"stat, blank lines and spaces", "\n  rss   1048576 \n\ncache 4096", map[string]int64{"rss": 1 << 20, "cache": 4096}, ""},
		{"empty", "", map[string]int64{}, ""},
		{"big", "total_cache 9223372036854775807", map[string]int64{"total_cache": 1<<63 - 1}, ""},
		{"no value", "oom_kill\n", nil, "want a name and a value"},
		{"three fields", "oom_kill 1 2\n", nil, "want a name and a value"},
		{"not a number", "oom_kill x\n", nil, "not a count"},
		{"max is not a count", "limit max\n", nil, "not a count"},
		{"negative", "oom_kill -1\n", nil, "negative"},
		{"overflow", "rss 9223372036854775808\n", nil, "not a count"},
		{"repeated", "oom_kill 1\noom_kill 2\n", nil, "repeated"},
		{"float", "rss 1.5\n", nil, "not a count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseKeyValues(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one with %q (got %v)", err, tc.err, got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestParseCount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"67108864\n", 64 << 20, true}, {" 0 ", 0, true}, {"", 0, false}, {"max\n", 0, false}, {"-5", 0, false},
		{"12 13", 0, false}, {"0x10", 0, false}, {"99999999999999999999", 0, false},
	} {
		got, err := parseCount(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseCount(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseCgroupMounts(t *testing.T) {
	const hybrid = `sysfs /sys sysfs rw,nosuid 0 0
tmpfs /sys/fs/cgroup tmpfs ro,nosuid 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
`
	for _, tc := range []struct {
		name, in string
		v1       string
		v2       []string
		err      bool
	}{
		{"hybrid", hybrid, "/sys/fs/cgroup/memory", []string{"/sys/fs/cgroup/unified"}, false},
		{"unified", "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n", "", []string{"/sys/fs/cgroup"}, false},
		{"escaped space", `cgroup /mnt/my\040cg cgroup rw,memory 0 0`, "/mnt/my cg", nil, false},
		{"memory only as a prefix", "cgroup /x cgroup rw,memory_recursiveprot 0 0\n", "", nil, false},
		{"none", "proc /proc proc rw 0 0\n", "", nil, false},
		{"empty", "", "", nil, false},
		{"short line", "cgroup /x cgroup\n", "", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v1, v2, err := parseCgroupMounts(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			if !tc.err && (v1 != tc.v1 || !reflect.DeepEqual(v2, tc.v2)) {
				t.Errorf("got %q, %q; want %q, %q", v1, v2, tc.v1, tc.v2)
			}
		})
	}
}

func FuzzParseKeyValues(f *testing.F) {
	for _, s := range []string{"oom_kill 0\n", "low 0\nhigh 1\n", "a\n", "a 1 2", "a -1", "a 1\na 1", "\n\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseKeyValues(s)
		if err != nil {
			return
		}
		for k, v := range m {
			if v < 0 || k == "" || strings.ContainsAny(k, " \t\n") {
				t.Fatalf("parseKeyValues(%q) gave %q = %d", s, k, v)
			}
		}
	})
}

func FuzzParseCgroupMounts(f *testing.F) {
	f.Add("cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\ncgroup2 /u cgroup2 rw 0 0\n")
	f.Add(`cgroup /a\040b cgroup memory 0 0`)
	f.Fuzz(func(t *testing.T, s string) {
		v1, v2, err := parseCgroupMounts(s)
		if err == nil && v1 == "" && len(v2) == 0 && strings.Contains(s, "cgroup2") && len(strings.Fields(s)) >= 4 &&
			strings.Fields(s)[2] == "cgroup2" {
			t.Fatalf("parseCgroupMounts(%q) missed the v2 mount", s)
		}
	})
}

// TestMemCgroup makes a real cgroup, runs a shell in it the way the relay is started, and
// reads its counters.
func TestMemCgroup(t *testing.T) {
	cg, err := newMemCgroup(fmt.Sprintf("keel-bench-test-%d", os.Getpid()), 64<<20)
	if err != nil {
		t.Skipf("no memory cgroup here: %v", err)
	}
	t.Cleanup(func() {
		if err := cg.remove(); err != nil {
			t.Error(err)
		}
	})
	// The shell joins the cgroup, then execs a command that prints its own cgroup.
	out, err := exec.Command("/bin/sh", "-c", `echo $$ > "$1" && shift && exec "$@"`, "sh",
		filepath.Join(cg.dir, "cgroup.procs"), "cat", "/proc/self/cgroup").CombinedOutput()
	if err != nil {
		t.Fatalf("run in the cgroup: %v: %s", err, out)
	}
	if !strings.Contains(string(out), filepath.Base(cg.dir)) {
		t.Errorf("the command did not run in %s: %s", cg.dir, out)
	}
	if n, err := cg.oomKills(); err != nil || n != 0 {
		t.Errorf("oom kills %d, %v; want 0", n, err)
	}
	if p, err := cg.peak(); err != nil || p <= 0 {
		t.Errorf("peak %d, %v; want > 0", p, err)
	}
	if _, err := cg.anon(); err != nil {
		t.Error(err)
	}
	if !cg.v2 {
		if err := cg.resetPeak(); err != nil {
			t.Error(err)
		}
	}
	if cg.swap == "" {
		t.Error("no word on swap")
	}
}

// TestPutLoad runs putLoad against a real HTTP server that answers 503 with Retry-After to
// every other request.
func TestPutLoad(t *testing.T) {
	var calls, stored atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			http.Error(w, "method", http.StatusMethodNotAllowed)
			return
		}
		if calls.Add(1)%2 == 0 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		stored.Add(1)
	}))
	defer srv.Close()
	p := &relayProc{url: srv.URL, exited: make(chan struct{})}
	res, err := putLoad(t.Context(), p, []byte("body"), fileIDs("t", 50), 4, "1h")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.acked) != 50 || stored.Load() != 50 || res.retries == 0 || res.failed != 0 || res.died {
		t.Errorf("acked %d (stored %d), retries %d, failed %d, died %v", len(res.acked), stored.Load(), res.retries, res.failed, res.died)
	}
	if int64(res.retries)+50 != calls.Load() {
		t.Errorf("%d retries + 50 != %d calls", res.retries, calls.Load())
	}

	// A 4xx other than 429 is the benchmark's fault: an error.
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) })
	if _, err := putLoad(t.Context(), p, []byte("body"), fileIDs("t", 5), 2, "1h"); err == nil {
		t.Error("403 answers: no error")
	}
	// A relay that is gone: the load stops and says it died.
	srv.Close()
	close(p.exited)
	start := time.Now()
	res, err = putLoad(t.Context(), p, []byte("body"), fileIDs("t", 5), 2, "1h")
	if err != nil || !res.died || len(res.acked) != 0 || time.Since(start) > 5*time.Second {
		t.Errorf("relay gone: %+v, %v", res, err)
	}
}
