package bench

// In-process benchmarks of a signed PUT: the relay (relaytest.StartLogging) runs in the test
// binary, on loopback, with a real store in a temp dir, so that -benchmem, -memprofile and
// -cpuprofile see the relay's side. The client's side (net/http's client, the request body)
// is in the same process and counted too; pprof tells them apart.

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keel-relay/keel/relay/relaytest"
)

// startInProcess runs a relay for root with src and dst below it, logging nothing (a log
// buffer would count as allocations), its data in dir.
func startInProcess(b *testing.B, dir string) (*relaytest.Relay, *relaytest.Node) {
	b.Helper()
	src := relaytest.NewNode("src", "root", 0)
	dst := relaytest.NewNode("dst", "root", 1)
	root := relaytest.NewNode("root", "root", 2)
	cfg := relaytest.Config(b, dir, "root", relaytest.NodeMap(root, src, dst))
	cfg.HTTP.MaxBody = 1 << 30
	return relaytest.StartLogging(b, cfg, slog.New(slog.DiscardHandler)), src
}

// benchPut PUTs a signed file of size bytes b.N times in a row on one keep-alive connection,
// each under a new id.
func benchPut(b *testing.B, size int) {
	r, src := startInProcess(b, benchDir(b))
	body := relaytest.SignedBody(b, src, randomContent(b, size), "1d")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := put(client, fmt.Sprintf("%s/shared-files/dst/src/f%d?ttl=1h", r.URL, i), body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutInProcess1KiB measures a signed 1 KiB PUT stored for a node: time, allocations
// and bytes allocated per PUT (client side included).
func BenchmarkPutInProcess1KiB(b *testing.B) { benchPut(b, 1<<10) }

// BenchmarkPutInProcess1MiB is BenchmarkPutInProcess1KiB for 1 MiB.
func BenchmarkPutInProcess1MiB(b *testing.B) { benchPut(b, 1<<20) }

// BenchmarkPutInProcess64MiB measures a signed 64 MiB PUT stored for a node, next to what
// bounds it, measured in the same run: single-core SHA-256 and SHA-512 (the hash the relay
// computes while it reads) and writing 64 MiB + fsync to a file in the store's directory
// (the median of three).
func BenchmarkPutInProcess64MiB(b *testing.B) {
	dir := benchDir(b)
	r, src := startInProcess(b, dir)
	content := randomContent(b, 64<<20)
	body := relaytest.SignedBody(b, src, content, "1d")
	sha256Rate := hashSpeed(sha256.New(), content[:8<<20])
	sha512Rate := hashSpeed(sha512.New(), content[:8<<20])
	// The median of three: one write + fsync of 64 MiB varies a lot from one to the next.
	var disk [3]float64
	for i := range disk {
		disk[i] = diskSyncSpeed(b, filepath.Join(dir, "data"), content)
	}
	slices.Sort(disk[:])
	diskRate := disk[1]
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := put(client, fmt.Sprintf("%s/shared-files/dst/src/big%d?ttl=1h", r.URL, i), body); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	putRate := float64(len(content)) * float64(b.N) / b.Elapsed().Seconds()
	limit := min(sha256Rate, diskRate)
	b.ReportMetric(putRate/1e6, "put_MB/s")
	b.ReportMetric(sha256Rate/1e6, "sha256_MB/s")
	b.ReportMetric(sha512Rate/1e6, "sha512_MB/s")
	b.ReportMetric(diskRate/1e6, "disk_sync_MB/s")
	b.ReportMetric(putRate/sha256Rate, "ratio_to_sha256")
	b.ReportMetric(putRate/diskRate, "ratio_to_disk")
	b.ReportMetric(putRate/limit, "ratio_to_limit")
}
