//go:build linux

package relay_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/config"
)

func nodeIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("n%04d", i)
	}
	return ids
}

// BenchmarkRemoteRun1000 runs a command that sleeps 200 ms on 1,000 nodes, 32 at a time, and
// reports the wall time against the ideal 1000/32 × 0.2 s = 6.25 s.
func BenchmarkRemoteRun1000(b *testing.B) {
	const nodes, concurrency = 1000, 32
	const sleep = 200 * time.Millisecond
	sleepCmd, err := exec.LookPath("sleep")
	if err != nil {
		b.Skip("no sleep command")
	}
	ids := nodeIDs(nodes)
	r := startRunRelay(b, "root", rootWith(ids...), []string{sleepCmd, strconv.FormatFloat(sleep.Seconds(), 'f', -1, 64)}, func(c *config.Config) {
		c.RemoteRun.Concurrency = concurrency
	})
	form := "keep_output=false&asynchronous=false&nodes=" + strings.Join(ids, ",")
	var wall time.Duration
	var runMS int64 // sum of the node runs' durations, as the relay reports them
	calls := 0
	for b.Loop() {
		start := time.Now()
		status, _, body := post(b, r.URL+api+"/remote-run/nodes", form)
		wall += time.Since(start)
		calls++
		if status != http.StatusOK {
			b.Fatalf("status %d", status)
		}
		a := parseAnswer(b, body)
		for _, id := range ids {
			res, ok := a.results[id]
			if !ok || res.ExitCode != 0 {
				b.Fatalf("node %s: %+v", id, res)
			}
			runMS += res.DurationMS
		}
	}
	ideal := float64(nodes) / concurrency * sleep.Seconds()
	perCall := wall.Seconds() / float64(calls)
	b.ReportMetric(perCall, "wall-s/op")
	b.ReportMetric(perCall/ideal, "x-ideal")
	b.ReportMetric(float64(runMS)/float64(calls*nodes), "ms/node-run")
}

// BenchmarkRemoteRunOutput runs 1,000 nodes printing 1 MiB each with keep_output=true, the
// client reading and discarding, and reports how much the heap and the peak RSS of the test
// process (relay and client) grew during the call: it stays bounded however much flows.
func BenchmarkRemoteRunOutput(b *testing.B) {
	const nodes, lines, size = 1000, 1024, 1023 // 1024 lines of 1023 bytes + newline = 1 MiB
	ids := nodeIDs(nodes)
	r := startRunRelay(b, "root", rootWith(ids...),
		agentCommand(b.TempDir(), "-lines", strconv.Itoa(lines), "-bytes", strconv.Itoa(size)), nil)
	form := "keep_output=true&asynchronous=false&nodes=" + strings.Join(ids, ",")
	b.SetBytes(nodes * lines * (size + 1))
	var peakHeap, peakSys, hwmGrowth uint64
	for b.Loop() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		baseHeap, baseSys := ms.HeapInuse, ms.Sys
		baseHWM := vmHWM(b)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		var maxHeap, maxSys uint64
		wg.Go(func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				maxHeap, maxSys = max(maxHeap, ms.HeapInuse), max(maxSys, ms.Sys)
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		})

		req, err := http.NewRequest(http.MethodPost, r.URL+api+"/remote-run/nodes", strings.NewReader(form))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := newClient().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var c lineCounter
		_, err = io.Copy(&c, resp.Body)
		_ = resp.Body.Close()
		close(stop)
		wg.Wait()
		if err != nil {
			b.Fatalf("reading the answer: %v", err)
		}
		if c.lines != nodes*(lines+1) || c.results != nodes {
			b.Fatalf("%d lines of which %d result lines, want %d and %d", c.lines, c.results, nodes*(lines+1), nodes)
		}
		peakHeap = max(peakHeap, maxHeap-min(maxHeap, baseHeap))
		peakSys = max(peakSys, maxSys-min(maxSys, baseSys))
		hwmGrowth = max(hwmGrowth, vmHWM(b)-baseHWM)
	}
	const mib = 1 << 20
	b.ReportMetric(float64(peakHeap)/mib, "heap-growth-MiB")
	b.ReportMetric(float64(peakSys)/mib, "sys-growth-MiB")
	b.ReportMetric(float64(hwmGrowth)/mib, "VmHWM-growth-MiB")
}

// lineCounter counts the lines written to it, and among them the result lines (starting '{').
type lineCounter struct {
	lines, results int
	mid            bool // inside a line
}

func (c *lineCounter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if !c.mid && p[0] == '{' {
			c.results++
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.mid = true
			break
		}
		c.lines++
		c.mid = false
		p = p[i+1:]
	}
	return n, nil
}

// vmHWM returns the peak resident set size of this process, in bytes.
func vmHWM(b *testing.B) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
