package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/sharedpath"
	"github.com/keel-relay/keel/relay/relaytest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keel-bench-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "keel-relay")
	cmd := exec.Command("go", "build", "-o", binary, "../cmd/keel-relay")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build keel-relay: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// relayProc is a keel-relay subprocess.
type relayProc struct {
	cmd *exec.Cmd
	url string
}

// benchDir returns a directory for the relay's data: under $KEEL_BENCH_DIR when set (e.g.
// /dev/shm to take the disk out of the figures), else the test's temp dir.
func benchDir(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv("KEEL_BENCH_DIR")
	if base == "" {
		return tb.TempDir()
	}
	dir, err := os.MkdirTemp(base, "keel-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startRelay runs keel-relay as root with the given node map; maxUploads sets
// http.max_concurrent_uploads, and http.max_uploads_per_client too (the benchmarks' load comes
// from one address).
func startRelay(tb testing.TB, nodes []byte, maxUploads int) *relayProc {
	tb.Helper()
	dir := benchDir(tb)
	if err := os.WriteFile(filepath.Join(dir, "nodes.json"), nodes, 0o644); err != nil {
		tb.Fatal(err)
	}
	api, admin := relaytest.FreeAddr(tb), relaytest.FreeAddr(tb)
	cfg := fmt.Sprintf("data_dir: %s\nnodes_file: %s\nlog:\n  level: warn\nhttp:\n  listen: %s\n  max_body: 1GiB\n  max_concurrent_uploads: %d\n  max_uploads_per_client: %d\nadmin:\n  listen: %s\nedge:\n  enabled: false\n",
		filepath.Join(dir, "data"), filepath.Join(dir, "nodes.json"), api, maxUploads, maxUploads, admin)
	cfgPath := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(binary, "run", "--config", cfgPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	// KEEL_BENCH_CGROUP names a memory cgroup (v1 or v2 directory) to run the relay in, to
	// check its footprint under a hard memory limit as on a small box.
	if cg := os.Getenv("KEEL_BENCH_CGROUP"); cg != "" {
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			_ = cmd.Process.Kill()
			tb.Fatalf("move relay into cgroup %s: %v", cg, err)
		}
	}
	p := &relayProc{cmd: cmd, url: "http://" + api}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(p.url + "/rudder/relay-api/1/system/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatal("relay did not become ready")
	return nil
}

// rss returns the current and peak resident set size of the process, in bytes.
func rss(tb testing.TB, pid int) (cur, peak int64) {
	m := procStatus(tb, pid)
	return m["VmRSS"], m["VmHWM"]
}

// procStatus returns the memory lines of /proc/<pid>/status, in bytes.
func procStatus(tb testing.TB, pid int) map[string]int64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	m := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[2] != "kB" {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		m[strings.TrimSuffix(fields[0], ":")] = kb << 10
	}
	return m
}

// sha256Speed measures single-core SHA-256 throughput in bytes/s over buf.
func sha256Speed(buf []byte) float64 { return hashSpeed(sha256.New(), buf) }

// hashSpeed measures single-core throughput of h in bytes/s over buf.
func hashSpeed(h hash.Hash, buf []byte) float64 {
	start := time.Now()
	n := 0
	for time.Since(start) < 500*time.Millisecond {
		h.Write(buf)
		n += len(buf)
	}
	return float64(n) / time.Since(start).Seconds()
}

// diskSyncSpeed measures how fast dir's file system takes data that must be durable: write
// buf and fsync, in bytes/s — the limit of a synced PUT.
func diskSyncSpeed(tb testing.TB, dir string, buf []byte) float64 {
	tb.Helper()
	f, err := os.CreateTemp(dir, "disk-speed-")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	start := time.Now()
	if _, err := f.Write(buf); err != nil {
		tb.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		tb.Fatal(err)
	}
	return float64(len(buf)) / time.Since(start).Seconds()
}

func put(client *http.Client, url string, body []byte) error {
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT %s: %s", url, resp.Status)
	}
	return nil
}

func randomContent(tb testing.TB, n int) []byte {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkPut64MiB measures the throughput of a signed 64 MiB PUT stored for a node of the
// relay (signature verified and hash recomputed while streaming, synced commit), reported
// next to single-core SHA-256 speed measured in the same run.
func BenchmarkPut64MiB(b *testing.B) {
	src := relaytest.NewNode("src", "root", 0)
	dst := relaytest.NewNode("dst", "root", 1)
	root := relaytest.NewNode("root", "root", 2)
	p := startRelay(b, relaytest.NodeMap(root, src, dst), 64)
	content := randomContent(b, 64<<20)
	body := relaytest.SignedBody(b, src, content, "1d")
	shaSpeed := sha256Speed(content[:8<<20])
	diskSpeed := diskSyncSpeed(b, benchDir(b), content)
	client := &http.Client{}
	b.SetBytes(int64(len(content)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := put(client, fmt.Sprintf("%s/shared-files/dst/src/big%d?ttl=1h", p.url, i), body); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	putSpeed := float64(len(content)) * float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(putSpeed/1e6, "put_MB/s")
	b.ReportMetric(shaSpeed/1e6, "sha256_MB/s")
	b.ReportMetric(putSpeed/shaSpeed, "ratio_to_sha256")
	b.ReportMetric(diskSpeed/1e6, "disk_sync_MB/s")
	b.ReportMetric(putSpeed/diskSpeed, "ratio_to_disk")
}

// BenchmarkHead measures HEAD requests per second from 64 concurrent clients on keep-alive
// connections, against a stored file.
func BenchmarkHead(b *testing.B) {
	src := relaytest.NewNode("src", "root", 0)
	dst := relaytest.NewNode("dst", "root", 1)
	root := relaytest.NewNode("root", "root", 2)
	p := startRelay(b, relaytest.NodeMap(root, src, dst), 64)
	content := randomContent(b, 4096)
	sum := sha256.Sum256(content)
	if err := put(http.DefaultClient, p.url+sharedpath.Path("", "dst", "src", "f")+"?ttl=1h", relaytest.SignedBody(b, src, content, "1d")); err != nil {
		b.Fatal(err)
	}
	url := p.url + sharedpath.Path(sharedpath.Unversioned, "dst", "src", "f") + "?hash=" + hex.EncodeToString(sum[:])
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	const workers = 64
	const perWorker = 500
	var failed atomic.Int64
	b.ResetTimer()
	for b.Loop() {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range perWorker {
					req, _ := http.NewRequest(http.MethodHead, url, nil)
					resp, err := client.Do(req)
					if err != nil || resp.StatusCode != 200 {
						failed.Add(1)
						if resp != nil {
							resp.Body.Close()
						}
						continue
					}
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d HEAD requests failed", failed.Load())
	}
	b.ReportMetric(float64(workers*perWorker*b.N)/b.Elapsed().Seconds(), "heads/s")
}

// BenchmarkConcurrentPutRSS runs 100 concurrent signed 1 MiB PUTs and reports the relay
// process's peak RSS (VmHWM) — the goal is under 128 MiB.
func BenchmarkConcurrentPutRSS(b *testing.B) {
	src := relaytest.NewNode("src", "root", 0)
	dst := relaytest.NewNode("dst", "root", 1)
	root := relaytest.NewNode("root", "root", 2)
	p := startRelay(b, relaytest.NodeMap(root, src, dst), 128)
	content := randomContent(b, 1<<20)
	body := relaytest.SignedBody(b, src, content, "1d")
	_, before := rss(b, p.cmd.Process.Pid)
	const clients = 100
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	b.SetBytes(clients << 20)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for c := range clients {
			wg.Go(func() {
				if err := put(client, fmt.Sprintf("%s/shared-files/dst/src/f%d-%d?ttl=1h", p.url, i, c), body); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		cancel()
		_ = ctx
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if os.Getenv("KEEL_BENCH_SMAPS") != "" {
		printMappings(b, p.cmd.Process.Pid)
	}
	st := procStatus(b, p.cmd.Process.Pid)
	cur, peak := st["VmRSS"], st["VmHWM"]
	b.ReportMetric(float64(st["RssAnon"])/(1<<20), "rss_anon_end_MiB")
	b.ReportMetric(float64(st["RssFile"]+st["RssShmem"])/(1<<20), "rss_file_end_MiB")
	b.ReportMetric(float64(before)/(1<<20), "rss_start_MiB")
	b.ReportMetric(float64(peak)/(1<<20), "rss_peak_MiB")
	b.ReportMetric(float64(cur)/(1<<20), "rss_end_MiB")
}

// printMappings logs the process's mappings holding more than 1 MiB resident (set
// KEEL_BENCH_SMAPS=1 to see where the RSS goes).
func printMappings(tb testing.TB, pid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return
	}
	var name string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			name = strings.Join(f[5:], " ")
			continue
		}
		if len(f) == 3 && f[0] == "Rss:" {
			if kb, _ := strconv.Atoi(f[1]); kb > 1024 {
				tb.Logf("%6d KiB  %s", kb, name)
			}
		}
	}
}
