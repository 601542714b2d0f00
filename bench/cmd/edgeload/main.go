//go:build linux

// Command edgeload plays many edge daemons against a keel-relay, for the benchmark report.
// It is a separate process from the relay, so the relay's RSS and CPU are its own.
//
//	edgeload enroll -edge ADDR -key FILE -issuer ISS -n N -out FILE
//	    enrolls N daemons through AttestNode + ChallengeNode with enrollment tokens signed by
//	    the relay's key file (edge-signing.key in its data dir) and writes their identities
//	edgeload run -edge ADDR -ids FILE
//	    opens one ConnectEdge stream per daemon, each on its own connection, answers every
//	    InvokeTool at once (Ok, exit code 0), and reconnects with exponential backoff and
//	    jitter when a stream ends; on each "stats" line read from stdin it prints its
//	    counters as one JSON line; it stops at end of input
//	edgeload baseline -n CALLS -c CONCURRENCY
//	    a bare gRPC unary call (grpc.health.v1 Check) between a client and a server in this
//	    process on loopback, concurrently: the baseline of InvokeTool round trips/s
//
// Daemons dial from 127.0.0.1-127.0.0.100 in turn (all loopback) so that the relay's
// per-address attestation limit and the ephemeral ports are spread.
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/keel-relay/keel/bench/internal/rlimit"
	"github.com/keel-relay/keel/edge/edgesim"
	"github.com/keel-relay/keel/edge/keys"
	"github.com/keel-relay/keel/edge/server"
	"github.com/keel-relay/keel/internal/wire/edgepb"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: edgeload enroll|run|baseline [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "enroll":
		err = enroll(os.Args[2:])
	case "run":
		err = run(os.Args[2:])
	case "baseline":
		err = baseline(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgeload:", err)
		os.Exit(1)
	}
}

// dial opens a connection of its own to the relay from the i-th loopback source address.
func dial(addr string, i int) (*grpc.ClientConn, error) {
	src := net.IPv4(127, 0, 0, byte(1+i%100))
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}
			return d.DialContext(ctx, "tcp", a)
		}),
		// Small buffers: thousands of daemons live in this process.
		grpc.WithReadBufferSize(4<<10), grpc.WithWriteBufferSize(4<<10),
	)
}

// identity is one enrolled daemon as written to the identities file.
type identity struct {
	NodeID string `json:"node_id"`
	Seed   []byte `json:"seed"`
	Token  string `json:"token"`
}

// caps are the capabilities every simulated daemon declares.
func caps() *edgepb.EdgeCapabilities {
	return &edgepb.EdgeCapabilities{Os: "linux", Arch: "amd64", LocalTools: []string{"echo"}, CustomLabels: map[string]string{"bench": "edgeload"}}
}

func enroll(args []string) error {
	fs := flag.NewFlagSet("enroll", flag.ExitOnError)
	addr := fs.String("edge", "", "relay edge listener HOST:PORT")
	keyFile := fs.String("key", "", "the relay's edge signing key (edge-signing.key in its data dir)")
	issuer := fs.String("issuer", "keel-relay:root", "the relay's issuer (keel-relay:<node_id>)")
	n := fs.Int("n", 100, "daemons")
	conc := fs.Int("c", 32, "enrollments at once")
	out := fs.String("out", "", "identities file to write")
	_ = fs.Parse(args)
	if *addr == "" || *keyFile == "" || *out == "" {
		return errors.New("enroll: -edge, -key and -out are required")
	}
	if err := rlimit.RaiseNoFile(*conc + 64); err != nil {
		return err
	}
	key, err := keys.Load(*keyFile)
	if err != nil {
		return err
	}
	ids := make([]identity, *n)
	start := time.Now()
	var next, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for w := range *conc {
		wg.Go(func() {
			conn, err := dial(*addr, w)
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			defer conn.Close()
			client := edgepb.NewNodeClusterServiceClient(conn)
			for {
				i := int(next.Add(1) - 1)
				if i >= *n {
					return
				}
				if err := enrollOne(client, key, *issuer, i, &ids[i]); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if p := firstErr.Load(); p != nil {
		return fmt.Errorf("%d of %d enrollments failed; first: %w", failed.Load(), *n, *p)
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, id := range ids {
		if err := enc.Encode(id); err != nil {
			return err
		}
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"enrolled": *n, "took_s": took.Seconds()})
}

func enrollOne(c edgepb.NodeClusterServiceClient, key ed25519.PrivateKey, issuer string, i int, out *identity) error {
	tok, _, err := server.EnrollmentToken(key, issuer, "bench", fmt.Sprintf("edgeload-%05d", i), time.Hour, time.Now())
	if err != nil {
		return err
	}
	id, err := edgesim.NewIdentity()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := id.Enroll(ctx, c, tok, caps()); err != nil {
		return err
	}
	*out = identity{NodeID: id.NodeID, Seed: id.Key.Seed(), Token: id.Token()}
	return nil
}

// counters are what a run reports on "stats".
type counters struct {
	Daemons     int            `json:"daemons"`
	Connects    int64          `json:"connects"`     // streams opened (Hello sent)
	Up          int64          `json:"up"`           // streams open now
	StreamEnds  int64          `json:"stream_ends"`  // streams that ended
	Unavailable int64          `json:"unavailable"`  // ends and refused connects with Unavailable (relay down)
	Errors      int64          `json:"errors"`       // ends with any other code
	ErrorCodes  map[string]int `json:"error_codes"`  // those, by code
	FirstError  string         `json:"first_error"`  // the first of those
	Invokes     int64          `json:"invokes"`      // InvokeTool answered
	Heartbeat   string         `json:"heartbeat"`    // interval
	Started     float64        `json:"started_unix"` // when run started
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	addr := fs.String("edge", "", "relay edge listener HOST:PORT")
	idsFile := fs.String("ids", "", "identities file written by enroll")
	hb := fs.Duration("heartbeat", 30*time.Second, "heartbeat interval")
	_ = fs.Parse(args)
	if *addr == "" || *idsFile == "" {
		return errors.New("run: -edge and -ids are required")
	}
	ids, err := readIDs(*idsFile)
	if err != nil {
		return err
	}
	if err := rlimit.RaiseNoFile(len(ids) + 256); err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var mu sync.Mutex
	c := counters{Daemons: len(ids), ErrorCodes: map[string]int{}, Heartbeat: hb.String(), Started: float64(time.Now().UnixNano()) / 1e9}
	var connects, up, ends, invokes atomic.Int64
	note := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		code := status.Code(err)
		if code == codes.Unavailable || code == codes.Canceled && ctx.Err() != nil {
			c.Unavailable++
			return
		}
		c.Errors++
		c.ErrorCodes[code.String()]++
		if c.FirstError == "" {
			c.FirstError = err.Error()
		}
	}
	handler := func(ctx context.Context, inv *edgepb.InvokeTool, progress func(*edgepb.Chunk)) *edgepb.EdgeResult {
		invokes.Add(1)
		return edgesim.Echo(ctx, inv, progress)
	}
	var wg sync.WaitGroup
	for i, rec := range ids {
		id := &edgesim.Identity{NodeID: rec.NodeID, Key: ed25519.NewKeyFromSeed(rec.Seed)}
		id.SetToken(rec.Token)
		wg.Go(func() {
			conn, err := dial(*addr, i)
			if err != nil {
				note(err)
				return
			}
			defer conn.Close()
			client := edgepb.NewNodeClusterServiceClient(conn)
			// Heartbeats start at a random phase, as daemons started at different times.
			jitter := time.Duration(rand.Int64N(int64(*hb)))
			backoff := 250 * time.Millisecond
			for ctx.Err() == nil {
				opened := false
				err := id.Run(ctx, client, edgesim.Options{
					Capabilities: caps(), Handler: handler, Heartbeat: *hb + jitter/8,
					Connected: func() { opened = true; connects.Add(1); up.Add(1) },
				}, grpc.WaitForReady(false))
				if opened {
					up.Add(-1)
					ends.Add(1)
					backoff = 250 * time.Millisecond
				}
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					note(err)
				}
				// Exponential backoff with full jitter, capped at 8 s.
				sleep := time.Duration(rand.Int64N(int64(backoff))) + 50*time.Millisecond
				backoff = min(2*backoff, 8*time.Second)
				select {
				case <-ctx.Done():
					return
				case <-time.After(sleep):
				}
			}
		})
	}
	sc := bufio.NewScanner(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "stats" {
			continue
		}
		mu.Lock()
		snap := c
		snap.ErrorCodes = map[string]int{}
		for k, v := range c.ErrorCodes {
			snap.ErrorCodes[k] = v
		}
		mu.Unlock()
		snap.Connects, snap.Up, snap.StreamEnds, snap.Invokes = connects.Load(), up.Load(), ends.Load(), invokes.Load()
		if err := enc.Encode(snap); err != nil {
			break
		}
	}
	stop()
	wg.Wait()
	return nil
}

func readIDs(path string) ([]identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ids []identity
	dec := json.NewDecoder(f)
	for {
		var id identity
		if err := dec.Decode(&id); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(id.Seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("%s: daemon %s has a bad key seed", path, id.NodeID)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func baseline(args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ExitOnError)
	n := fs.Int("n", 20000, "calls")
	conc := fs.Int("c", 256, "calls at once")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	conn, err := dial(ln.Addr().String(), 0)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx := context.Background()
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil { // connect
		return err
	}
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	start := time.Now()
	var wg sync.WaitGroup
	for range *conc {
		wg.Go(func() {
			for next.Add(1) <= int64(*n) {
				if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if p := firstErr.Load(); p != nil {
		return *p
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"calls": *n, "concurrency": *conc, "took_s": took.Seconds(), "rps": float64(*n) / took.Seconds()})
}
