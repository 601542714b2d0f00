package faults

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/keel-relay/keel/edge/edgesim"
	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/relay/relaytest"
)

// TestHostileAttestFlood (issue 12, finding 4): 210 loopback addresses in 42 networks
// (127.0.1-42.1-5) each make their 5 anonymous AttestNode calls a minute, which on the
// default config filled the one pool of 1,024 pending challenges for their 300 s, and the
// real `keel-agent edge enroll` then got ResourceExhausted. Now the flood fills only what
// anonymous callers may hold, and keel-agent, whose attestation carries its enrollment
// token, enrolls within a few seconds.
func TestHostileAttestFlood(t *testing.T) {
	needBinary(t)
	began := time.Now()
	dir := t.TempDir()
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(relaytest.NewNode("root", "root", 0)))
	api, admin, edgeAddr := relaytest.FreeAddr(t), relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := baseSettings("root", filepath.Join(dir, "data"), nodes, api, admin)
	s["edge.enabled"], s["edge.listen"] = "true", edgeAddr // every edge limit at its default
	cfg := writeConfig(t, dir, "relay.yaml", s)
	p := startRelay(t, "relay", cfg, api, admin)

	// The flood: every address's allowance, 16 calls at once.
	var sources []netip.Addr
	for n := 1; n <= 42; n++ {
		for m := 1; m <= 5; m++ {
			sources = append(sources, netip.AddrFrom4([4]byte{127, 0, byte(n), byte(m)}))
		}
	}
	var issued, exhausted atomic.Int64
	var failed sync.Once
	var failure error
	work := make(chan netip.Addr)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for src := range work {
				if err := attestFrom(edgeAddr, src, 5, &issued, &exhausted); err != nil {
					failed.Do(func() { failure = err })
				}
			}
		})
	}
	for _, src := range sources {
		work <- src
	}
	close(work)
	wg.Wait()
	if failure != nil {
		t.Fatal(failure)
	}
	t.Logf("flood: %d AttestNode calls from %d addresses in %s: %d challenges issued, %d refused with ResourceExhausted",
		5*len(sources), len(sources), time.Since(began).Round(time.Millisecond), issued.Load(), exhausted.Load())

	// The real keel-agent, from 127.0.0.1, with a token of the relay.
	tokCmd := exec.Command(relayBin, "edge", "enroll-token", "--config", cfg, "--tenant", "acme", "--label", "after-the-flood")
	tokCmd.Env = withoutKeelEnv()
	tok, err := tokCmd.Output()
	if err != nil {
		t.Fatalf("keel-relay edge enroll-token: %v", err)
	}
	node := uuid.NewString()
	agentCfg := filepath.Join(dir, "agent.yaml")
	y := fmt.Sprintf("node_id: %s\nedge:\n  relay: %s\n  key_file: %q\n  token_file: %q\n", node, edgeAddr, filepath.Join(dir, "edge.key"), filepath.Join(dir, "token"))
	if err := os.WriteFile(agentCfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	enroll := exec.CommandContext(ctx, agentBin, "edge", "enroll", "--relay", edgeAddr, "--token", strings.TrimSpace(string(tok)), "--config", agentCfg)
	enroll.Env = withoutKeelEnv()
	start := time.Now()
	out, err := enroll.CombinedOutput()
	took := time.Since(start)
	if err != nil || !strings.Contains(string(out), "enrolled: node "+node) {
		t.Fatalf("keel-agent edge enroll after the flood (%s): %v\n%s", took.Round(time.Millisecond), err, out)
	}
	t.Logf("keel-agent edge enroll after the flood: %s", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("keel-agent edge enroll took %s", took)
	}
	// The flood holds every challenge anonymous callers may (the default 1,024), no more.
	code, body, err := do(newClient(10*time.Second), http.MethodGet, p.admin+"/metrics", nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	for _, want := range []string{"keel_edge_challenges_pending 1024\n", "keel_edge_challenges_reserved_pending 0\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	if p.exited() {
		t.Fatal("the relay exited")
	}
	t.Logf("took %s", time.Since(began).Round(time.Millisecond))
}

// attestFrom makes calls anonymous AttestNode calls from src (each on the same connection)
// and counts the challenges issued and the calls refused with ResourceExhausted; any other
// outcome is an error.
func attestFrom(edgeAddr string, src netip.Addr, calls int, issued, exhausted *atomic.Int64) error {
	conn, err := edgesim.DialFrom(edgeAddr, src, grpc.WithUserAgent("hostile-attest"))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := edgepb.NewNodeClusterServiceClient(conn)
	caps := &edgepb.EdgeCapabilities{Os: "linux", Arch: "amd64"}
	for range calls {
		id, err := edgesim.NewIdentity()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = id.Attest(ctx, client, "", caps)
		cancel()
		switch grpcstatus.Code(err) {
		case codes.OK:
			issued.Add(1)
		case codes.ResourceExhausted:
			exhausted.Add(1)
		default:
			return fmt.Errorf("attest from %s: %w", src, err)
		}
	}
	return nil
}
