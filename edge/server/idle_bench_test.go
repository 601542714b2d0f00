package server

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/keel-relay/keel/edge/edgepb"
	"github.com/keel-relay/keel/edge/edgesim"
	"github.com/keel-relay/keel/relay/metrics"
	"github.com/keel-relay/keel/storage"
)

var (
	idleStreams     = flag.Int("idle.streams", 2000, "BenchmarkIdleStreams: streams to open")
	idleHeapProfile = flag.String("idle.heapprofile", "", "BenchmarkIdleStreams: write a heap profile with the streams up to this file")
)

// idleClientEnv names the identities file when the test binary runs as the client process
// of BenchmarkIdleStreams (TestIdleStreamsClient).
const (
	idleClientEnv = "KEEL_EDGE_IDLE_CLIENT_IDS"
	idleAddrEnv   = "KEEL_EDGE_IDLE_CLIENT_ADDR"
)

// idleIdentity is one enrolled daemon handed to the client process.
type idleIdentity struct {
	NodeID string `json:"node_id"`
	Seed   []byte `json:"seed"`
	Token  string `json:"token"`
}

// BenchmarkIdleStreams measures the memory the edge server holds per idle ConnectEdge stream:
// N daemons (-idle.streams) are enrolled, a client process (this test binary re-executed)
// opens one connection and stream per daemon and says Hello, and the server process's heap
// and goroutine stacks in use are compared before and after. Run it with -benchtime=1x:
//
//	go test -run '^$' -bench IdleStreams -benchtime=1x ./edge/server/
func BenchmarkIdleStreams(b *testing.B) {
	n := *idleStreams
	if *idleHeapProfile != "" {
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1 << 10
	}
	opts := testOptions()
	opts.MaxStreams = n + 1
	opts.FlushInterval = time.Hour
	opts.HelloTimeout = 10 * time.Second
	log := testLogger(nil)
	sopts := storage.DefaultOptions(b.TempDir())
	sopts.SyncWrites = false
	store, err := storage.Open(sopts, log)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	srv, err := New(opts, store, metrics.NewRegistry(), log)
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-served; err != nil {
			b.Errorf("Serve: %v", err)
		}
	}()

	// Enroll the daemons straight into the store, with tokens the server signs.
	ids := make([]idleIdentity, n)
	now := time.Now()
	for i := range ids {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		node := uuid.NewString()
		pub := key.Public().(ed25519.PublicKey)
		tok, c, err := srv.issueToken(node, "bench", pub, now)
		if err != nil {
			b.Fatal(err)
		}
		d := storage.Daemon{NodeID: node, Tenant: "bench", Label: "idle", PublicKey: pub, TokenID: c.ID, TokenExpiry: c.Expiry, EnrolledAt: now}
		if err := store.Enroll(uuid.NewString(), now.Add(time.Hour), d); err != nil {
			b.Fatal(err)
		}
		ids[i] = idleIdentity{NodeID: node, Seed: key.Seed(), Token: tok}
	}
	idsFile := filepath.Join(b.TempDir(), "ids.json")
	f, err := os.Create(idsFile)
	if err != nil {
		b.Fatal(err)
	}
	enc := json.NewEncoder(f)
	for _, id := range ids {
		if err := enc.Encode(id); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}

	before := idleSample()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleStreamsClient$", "-test.count=1")
	cmd.Env = append(os.Environ(), idleClientEnv+"="+idsFile, idleAddrEnv+"="+srv.Addr().String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	start := time.Now()
	for srv.reg.Len() < n {
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("%d of %d streams up after 5m", srv.reg.Len(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // let the last streams settle
	after := idleSample()
	if *idleHeapProfile != "" {
		pf, err := os.Create(*idleHeapProfile)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(pf, 0); err != nil {
			b.Fatal(err)
		}
		_ = pf.Close()
	}
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	b.ReportMetric(per(after.heap+after.stack, before.heap+before.stack), "bytes/stream")
	b.ReportMetric(per(after.heap, before.heap), "heap-bytes/stream")
	b.ReportMetric(per(after.stack, before.stack), "stack-bytes/stream")
	if before.rss > 0 && after.rss > 0 {
		b.ReportMetric(per(after.rss, before.rss), "rss-bytes/stream")
	}
	b.ReportMetric(per(after.alloc, before.alloc), "allocated-bytes/stream")
	b.ReportMetric(per(after.goroutines, before.goroutines), "goroutines/stream")
	b.ReportMetric(0, "ns/op")
}

// idleMem is a sample of the process's memory in use.
type idleMem struct{ rss, heap, stack, alloc, goroutines uint64 }

func idleSample() idleMem {
	rss := vmRSS()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return idleMem{rss: rss, heap: m.HeapInuse, stack: m.StackInuse, alloc: m.TotalAlloc, goroutines: uint64(runtime.NumGoroutine())}
}

// vmRSS returns the process's resident set size from /proc (0 where there is none).
func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kib << 10
		}
	}
	return 0
}

// TestIdleStreamsClient is the client process of BenchmarkIdleStreams: it opens a stream per
// daemon of the identities file, says Hello and holds the streams until its stdin ends.
// It is skipped unless the benchmark started it.
func TestIdleStreamsClient(t *testing.T) {
	file := os.Getenv(idleClientEnv)
	if file == "" {
		t.Skip("run by BenchmarkIdleStreams only")
	}
	addr := os.Getenv(idleAddrEnv)
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	var ids []idleIdentity
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var id idleIdentity
		if err := json.Unmarshal(sc.Bytes(), &id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // stdin closed: the benchmark is done
		_, _ = bufio.NewReader(os.Stdin).ReadString(0)
		cancel()
	}()
	var up, failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, rec := range ids {
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithReadBufferSize(4<<10), grpc.WithWriteBufferSize(4<<10))
		if err != nil {
			t.Fatal(err)
		}
		id := &edgesim.Identity{NodeID: rec.NodeID, Key: ed25519.NewKeyFromSeed(rec.Seed)}
		id.SetToken(rec.Token)
		sem <- struct{}{}
		wg.Go(func() {
			defer conn.Close()
			var once sync.Once
			release := func() { once.Do(func() { <-sem }) }
			defer release()
			err := id.Run(ctx, edgepb.NewNodeClusterServiceClient(conn), edgesim.Options{Connected: func() { up.Add(1); release() }})
			if err != nil && ctx.Err() == nil {
				failed.Add(1)
				fmt.Fprintln(os.Stderr, "idle client:", err)
			}
		})
	}
	<-ctx.Done()
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d streams failed (%d up)", failed.Load(), up.Load())
	}
}
