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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/keel-relay/keel/edge/edgesim"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/wire/edgepb"
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
	idleModeEnv   = "KEEL_EDGE_IDLE_CLIENT_MODE"
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
func BenchmarkIdleStreams(b *testing.B) { benchIdle(b, idleModeStreams, "stream") }

// BenchmarkIdleConnections measures the memory the edge server holds per connection that
// holds no stream: the client process opens N connections (-idle.streams), makes one unary
// call (grpc.health.v1 Check) on each and keeps them open.
//
//	go test -run '^$' -bench IdleConnections -benchtime=1x ./edge/server/
func BenchmarkIdleConnections(b *testing.B) { benchIdle(b, idleModeConns, "conn") }

// BenchmarkRefusedConnections measures the memory the edge server holds per connection whose
// ConnectEdge stream was refused (ResourceExhausted, the server holding its one stream): the
// connection stays open, as a daemon's that retries later does.
//
//	go test -run '^$' -bench RefusedConnections -benchtime=1x ./edge/server/
func BenchmarkRefusedConnections(b *testing.B) { benchIdle(b, idleModeRefused, "conn") }

// Modes of the idle client process.
const (
	idleModeStreams = "streams" // a stream per connection, Hello said
	idleModeConns   = "conns"   // one health check per connection, no stream
	idleModeRefused = "refused" // a ConnectEdge refused per connection
)

// benchIdle runs the idle client process in mode against a real server on loopback and
// reports the server's memory per connection (or stream), named per unit.
func benchIdle(b *testing.B, mode, unit string) {
	n := *idleStreams
	if *idleHeapProfile != "" {
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1 << 10
	}
	opts := testOptions()
	opts.MaxStreams = n + 1
	if mode == idleModeRefused {
		opts.MaxStreams = 1
	}
	opts.MaxConnections = n + 1
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
	cmd.Env = append(os.Environ(), idleClientEnv+"="+idsFile, idleAddrEnv+"="+srv.Addr().String(), idleModeEnv+"="+mode)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
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
	// The client says "up" on its stdout once every connection did its call.
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "up" {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%s: the client is not up after 5m (%d streams)", mode, srv.reg.Len())
	}
	time.Sleep(2 * time.Second) // let the last connections settle
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
	b.ReportMetric(per(after.heap+after.stack, before.heap+before.stack), "bytes/"+unit)
	b.ReportMetric(per(after.heap, before.heap), "heap-bytes/"+unit)
	b.ReportMetric(per(after.stack, before.stack), "stack-bytes/"+unit)
	if before.rss > 0 && after.rss > 0 {
		b.ReportMetric(per(after.rss, before.rss), "rss-bytes/"+unit)
	}
	b.ReportMetric(per(after.alloc, before.alloc), "allocated-bytes/"+unit)
	b.ReportMetric(per(after.goroutines, before.goroutines), "goroutines/"+unit)
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

// TestIdleStreamsClient is the client process of the idle benchmarks: per daemon of the
// identities file it opens a connection and, by mode, a stream that says Hello, a health
// check, or a stream the server refuses; it says "up" on stdout once all did, and holds the
// connections until its stdin ends.
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
	mode := os.Getenv(idleModeEnv)
	var up, failed atomic.Int64
	var wg sync.WaitGroup
	var done sync.WaitGroup // every connection did its call
	done.Add(len(ids))
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
			release := func() { once.Do(func() { <-sem; done.Done() }) }
			defer release()
			var err error
			switch mode {
			case idleModeConns:
				_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
				release()
				if err == nil {
					up.Add(1)
					<-ctx.Done()
				}
			case idleModeRefused:
				err = id.Run(ctx, edgepb.NewNodeClusterServiceClient(conn), edgesim.Options{Connected: func() { up.Add(1); release() }})
				if err != nil && (status.Code(err) == codes.ResourceExhausted || strings.Contains(err.Error(), "ResourceExhausted")) {
					up.Add(1)
					err = nil
				}
				release()
				<-ctx.Done()
			default:
				err = id.Run(ctx, edgepb.NewNodeClusterServiceClient(conn), edgesim.Options{Connected: func() { up.Add(1); release() }})
			}
			if err != nil && ctx.Err() == nil {
				failed.Add(1)
				fmt.Fprintln(os.Stderr, "idle client:", err)
			}
		})
	}
	done.Wait()
	fmt.Println("up")
	<-ctx.Done()
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d connections failed (%d up)", failed.Load(), up.Load())
	}
}
