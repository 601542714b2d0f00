//go:build linux

package faults

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/relaytest"
)

// Hostile disk tests (issue 12, finding 2): an unauthenticated peer filling the disk through
// AttestNode, and a relay started on a disk with no byte free. The relay must never die: it
// refuses writes with 507 / ResourceExhausted, says why, keeps serving what it holds, and
// leaves that state by itself when space comes back.

// smallStore is the storage section of the tests' relays: 4 MiB value-log files (as in the
// issue's report) and 1 MiB memtables, so that the reserve the storage engine needs leaves
// room for data on a small tmpfs.
func smallStore(s settings) settings {
	s["storage.value_log_file_size"] = "4MiB"
	s["storage.mem_table_size"] = "1MiB"
	return s
}

// diskFullRelay is a relay on a tmpfs of the given size, with the node map root, src, tgt.
type diskFullRelay struct {
	mnt, cfg, api, admin string
	src, tgt             *relaytest.Node
}

func newDiskFullRelay(t *testing.T, size string, edit func(settings)) *diskFullRelay {
	t.Helper()
	needBinary(t)
	mnt := mountTmpfs(t, size)
	dir := t.TempDir()
	r := &diskFullRelay{mnt: mnt, src: relaytest.NewNode("src", "root", 1), tgt: relaytest.NewNode("tgt", "root", 2)}
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(relaytest.NewNode("root", "root", 0), r.src, r.tgt))
	r.api, r.admin = relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := smallStore(baseSettings("root", filepath.Join(mnt, "data"), nodes, r.api, r.admin))
	if edit != nil {
		edit(s)
	}
	r.cfg = writeConfig(t, dir, "relay.yaml", s)
	return r
}

// put sends a signed shared file of size bytes from src to tgt.
func (r *diskFullRelay) put(t *testing.T, p *proc, id string, seed uint64, size int) (int, []byte, error) {
	return do(newClient(30*time.Second), http.MethodPut, filesURL(p.api, r.tgt.ID, r.src.ID, id),
		relaytest.SignedBody(t, r.src, content(seed, size), "1d"))
}

// statusNow returns /system/status, or false while the relay does not answer.
func statusNow(p *proc) (httpapi.Status, bool) {
	code, body, err := do(newClient(5*time.Second), http.MethodGet, p.api+"/rudder/relay-api/1/system/status", nil)
	if err != nil || (code != http.StatusOK && code != http.StatusServiceUnavailable) {
		return httpapi.Status{}, false
	}
	st, err := httpapi.DecodeStatus(body)
	return st, err == nil
}

// diskFullStatus waits until /system/status says the disk is full, and returns it.
func diskFullStatus(t *testing.T, p *proc, within time.Duration) httpapi.Status {
	t.Helper()
	var st httpapi.Status
	relaytest.Eventually(t, within, "status disk_full", func() bool {
		requireAlive(t, p, "waiting for status disk_full")
		var ok bool
		st, ok = statusNow(p)
		return ok && st.Status == "disk_full"
	})
	if !strings.HasPrefix(st.StatusReason, "disk full: ") || st.Disk == nil || !st.Disk.Full || st.Disk.FreeBytes >= st.Disk.NeedBytes {
		t.Fatalf("disk-full status does not say why: %+v %+v", st, st.Disk)
	}
	return st
}

// requireAlive fails the test if the relay died, showing why.
func requireAlive(t *testing.T, p *proc, when string) {
	t.Helper()
	out := p.out.String()
	if p.exited() || strings.Contains(out, "fatal error") {
		t.Fatalf("%s: the relay died (%s):\n%s", when, p.cmd.ProcessState, crash(out))
	}
}

// crash returns the start of a Go runtime crash in out (the fatal error, the signal and the
// stack of the goroutine that faulted), or out's tail when there is none.
func crash(out string) string {
	i := strings.Index(out, "fatal error")
	if i < 0 {
		return tail(out, 80)
	}
	lines := strings.Split(out[i:], "\n")
	return strings.Join(lines[:min(len(lines), 24)], "\n")
}

// attestClient is a gRPC client of the edge API whose connections come from the loopback
// address src: the relay sees one source address per client, as from several machines. The
// connection must be closed.
func attestClient(edge string, src net.IP) (edgepb.NodeClusterServiceClient, *grpc.ClientConn, error) {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	conn, err := grpc.NewClient("passthrough:///"+edge,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		return nil, nil, err
	}
	return edgepb.NewNodeClusterServiceClient(conn), conn, nil
}

// bigCapabilities returns valid capabilities of about size bytes: local tools of 100 bytes.
func bigCapabilities(size int) *edgepb.EdgeCapabilities {
	c := &edgepb.EdgeCapabilities{Os: "linux", Arch: "amd64"}
	for i := 0; i*100 < size; i++ {
		c.LocalTools = append(c.LocalTools, fmt.Sprintf("tool-%03d-%s", i, strings.Repeat("x", 91)))
	}
	return c
}

// attestPerSource is how many AttestNode calls the flood makes from one address: within the
// 5 per minute an address is allowed by default.
const attestPerSource = 5

// TestHostileDiskAttestFlood: AttestNode stores a challenge per call, anonymously. Flooded with
// large but valid requests from loopback addresses, a relay on a small tmpfs (default edge
// limits, but for max_pending_challenges) must never die: once the free-space reserve is
// reached it answers ResourceExhausted saying the disk is full, and a shared-file PUT gets
// 507 meanwhile.
//
// The capabilities start at 512 KiB (the edge API allows 4 MB messages) and are halved
// whenever the relay refuses them as invalid (a size bound on challenge records), or as too
// big for the disk (smaller ones may fit, down to 1 KiB): the flood sends as many records as
// it takes. Each address makes attestPerSource calls at most, then the next one goes on;
// every address is in a /24 and a /16 of its own, so no per-source or per-network limit
// stops the flood either.
func TestHostileDiskAttestFlood(t *testing.T) {
	began := time.Now()
	edge := relaytest.FreeAddr(t)
	r := newDiskFullRelay(t, "32m", func(s settings) {
		s["edge.enabled"] = "true"
		s["edge.listen"] = edge
		s["edge.max_pending_challenges"] = "1000000"
	})
	p := startRelay(t, "relay", r.cfg, r.api, r.admin)
	// Files stored while there is room: they must stay readable.
	for i := range 4 {
		if code, body, err := r.put(t, p, fmt.Sprintf("before%d", i), uint64(i+1), 64<<10); err != nil || code != http.StatusOK {
			t.Fatalf("PUT before the flood: %d %q %v", code, body, err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	const minCaps = 1 << 10
	var (
		capSize  atomic.Int64 // current size of the capabilities
		nextSrc  atomic.Int64 // addresses used so far
		stored   atomic.Int64 // challenges accepted
		diskFull atomic.Int64 // ResourceExhausted "disk is full" for the smallest records
		mu       sync.Mutex
		failure  error
	)
	capSize.Store(512 << 10)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if failure == nil {
			failure = err
		}
		cancel()
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			pub, _, _ := ed25519.GenerateKey(rand.Reader)
			var client edgepb.NodeClusterServiceClient
			var conn *grpc.ClientConn
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			calls := attestPerSource
			for ctx.Err() == nil && diskFull.Load() < 100 {
				if calls == attestPerSource {
					if conn != nil {
						conn.Close()
					}
					n := nextSrc.Add(1)
					var err error
					if client, conn, err = attestClient(edge, net.IPv4(127, byte(1+n/250%254), byte(n%250), 1)); err != nil {
						fail(err)
						return
					}
					calls = 0
				}
				calls++
				size := capSize.Load()
				_, err := client.AttestNode(ctx, &edgepb.AttestNodeRequest{
					NodeId: uuid.NewString(), Role: edgepb.NodeRole_NODE_ROLE_EDGE, PublicKey: pub,
					Capabilities: bigCapabilities(int(size)),
				})
				st := grpcstatus.Convert(err)
				switch {
				case err == nil:
					stored.Add(1)
				case st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "disk is full"):
					if size > minCaps {
						capSize.CompareAndSwap(size, size/2) // smaller records may still fit
					} else {
						diskFull.Add(1)
					}
				case st.Code() == codes.ResourceExhausted:
					calls = attestPerSource // this address is held back: the next one
				case st.Code() == codes.InvalidArgument && size > minCaps:
					capSize.CompareAndSwap(size, size/2)
				case ctx.Err() != nil:
				default:
					fail(fmt.Errorf("AttestNode with %d bytes of capabilities: %v", size, err))
				}
			}
		})
	}
	wg.Wait()
	requireAlive(t, p, "after the flood")
	if failure != nil {
		t.Fatalf("flood: %v", failure)
	}
	t.Logf("flood: %d challenges stored from %d addresses (capabilities of %d bytes at the end), %d disk-full refusals of the smallest, %s",
		stored.Load(), nextSrc.Load(), capSize.Load(), diskFull.Load(), time.Since(began).Round(time.Millisecond))
	if diskFull.Load() == 0 {
		t.Fatalf("the flood never reached the reserve: %d challenges stored in 40s, %d KiB free", stored.Load(), freeBytes(t, r.mnt)>>10)
	}

	// The smallest records are refused: the disk is at the reserve, within a record.
	st := status(t, p.api)
	if st.Disk == nil || st.Disk.FreeBytes >= st.Disk.NeedBytes+16<<10 {
		t.Fatalf("refused while not at the reserve: %+v %+v", st, st.Disk)
	}
	t.Logf("status %s %q (free %d KiB, need %d KiB, reserve %d KiB, ballast %d of %d KiB)", st.Status, st.StatusReason,
		st.Disk.FreeBytes>>10, st.Disk.NeedBytes>>10, st.Disk.ReserveBytes>>10, st.Disk.BallastBytes>>10, st.Disk.BallastWantBytes>>10)
	code, body, err := r.put(t, p, "during", 99, 64<<10)
	refusedWith507(t, p, "PUT while the flood holds the disk", filesPath(r.tgt.ID, r.src.ID, "during"), code, body, err)
	for i := range 4 {
		c := content(uint64(i+1), 64<<10)
		if code, err := headHash(newClient(10*time.Second), p.api, r.tgt.ID, r.src.ID, fmt.Sprintf("before%d", i), sha256Hex(c)); err != nil || code != http.StatusOK {
			t.Fatalf("HEAD before%d while the disk is full: %d %v", i, code, err)
		}
	}
	if !strings.Contains(p.out.String(), "disk full") {
		t.Error("the relay's log does not say the disk is full")
	}
	requireAlive(t, p, "at the end")
	p.stop(t)
	t.Logf("took %s", time.Since(began).Round(time.Millisecond))
}

// TestHostileDiskFullAtStart: a relay killed with SIGKILL in the middle of uploads, on a disk
// then filled to the last byte by another process, must start: it releases its ballast to
// open the database, says in /system/status and in its log that the disk is full, serves the
// files it holds, refuses uploads with 507, and once the other process frees its file,
// accepts uploads again without a restart.
func TestHostileDiskFullAtStart(t *testing.T) {
	began := time.Now()
	r := newDiskFullRelay(t, "48m", nil)
	p := startRelay(t, "relay", r.cfg, r.api, r.admin)
	const size = 256 << 10
	var stored []int
	for i := range 8 {
		if code, body, err := r.put(t, p, fmt.Sprintf("kept%d", i), uint64(i+1), size); err != nil || code != http.StatusOK {
			t.Fatalf("PUT kept%d: %d %q %v", i, code, body, err)
		}
		stored = append(stored, i)
	}
	if st := status(t, p.api); st.Disk != nil {
		t.Logf("before the kill: %d KiB free, ballast %d of %d KiB", st.Disk.FreeBytes>>10, st.Disk.BallastBytes>>10, st.Disk.BallastWantBytes>>10)
	}

	// Uploads in flight when the relay is killed: its WAL files are replayed at the start.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var acked atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if code, _, err := r.put(t, p, fmt.Sprintf("w%d-%d", w, i), uint64(1000+100*w+i), 64<<10); err == nil && code == http.StatusOK {
					acked.Add(1)
				}
			}
		})
	}
	relaytest.Eventually(t, 20*time.Second, "uploads acknowledged", func() bool { return acked.Load() >= 20 })
	p.kill9(t)
	cancel()
	wg.Wait()
	filler := filepath.Join(r.mnt, "filler")
	n := fillUp(t, filler)
	t.Logf("killed after %d uploads acknowledged; another process wrote %d MiB: %d bytes free", acked.Load(), n>>20, freeBytes(t, r.mnt))

	p = startRelay(t, "relay (full disk)", r.cfg, r.api, r.admin)
	st := diskFullStatus(t, p, 30*time.Second)
	t.Logf("started on a full disk in %s: %s", time.Since(began).Round(time.Millisecond), st.StatusReason)
	if !strings.Contains(p.out.String(), "released the disk ballast") || !strings.Contains(p.out.String(), "disk full") {
		t.Errorf("the log does not say the ballast was released and the disk is full:\n%s", tail(p.out.String(), 40))
	}
	for _, i := range stored {
		c := content(uint64(i+1), size)
		if code, err := headHash(newClient(10*time.Second), p.api, r.tgt.ID, r.src.ID, fmt.Sprintf("kept%d", i), sha256Hex(c)); err != nil || code != http.StatusOK {
			t.Fatalf("HEAD kept%d on a full disk: %d %v", i, code, err)
		}
	}
	code, got, _, err := getSigned(newClient(10*time.Second), p.api, r.tgt, r.src.ID, "kept0")
	if err != nil || code != http.StatusOK || !bytes.Equal(got, content(1, size)) {
		t.Fatalf("GET kept0 on a full disk: %d, %d bytes, %v", code, len(got), err)
	}
	code, body, err := r.put(t, p, "refused", 7, 64<<10)
	refusedWith507(t, p, "PUT on a full disk", filesPath(r.tgt.ID, r.src.ID, "refused"), code, body, err)
	if code, _, err := do(newClient(10*time.Second), http.MethodGet, p.admin+"/metrics", nil); err != nil || code != http.StatusOK {
		t.Fatalf("metrics on a full disk: %d %v", code, err)
	}
	requireAlive(t, p, "on a full disk")

	// The other process frees its file: the relay rebuilds its ballast and accepts uploads,
	// without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	relaytest.Eventually(t, 10*time.Second, "status ok once space is back", func() bool {
		requireAlive(t, p, "space freed")
		var ok bool
		st, ok = statusNow(p)
		return ok && st.Status == "ok" && st.Disk != nil && st.Disk.BallastBytes >= st.Disk.BallastWantBytes
	})
	if code, body, err := r.put(t, p, "after", 8, 64<<10); err != nil || code != http.StatusOK {
		t.Fatalf("PUT once space is back: %d %q %v", code, body, err)
	}
	requireAlive(t, p, "at the end")
	p.stop(t)
	t.Logf("took %s", time.Since(began).Round(time.Millisecond))
}

// TestHostileDiskFilledWhileRunning: another process fills the disk to the last byte while
// the relay runs; the relay gives its ballast to the database and goes on serving reads, and
// the other process takes that room too. Killed then and restarted with no byte free and no
// ballast, the relay cannot open its database: it stays up, says why in /system/status,
// answers uploads with 507, and opens the database and serves again as soon as space is
// freed, without a restart.
func TestHostileDiskFilledWhileRunning(t *testing.T) {
	began := time.Now()
	r := newDiskFullRelay(t, "48m", nil)
	p := startRelay(t, "relay", r.cfg, r.api, r.admin)
	const size = 256 << 10
	for i := range 4 {
		if code, body, err := r.put(t, p, fmt.Sprintf("kept%d", i), uint64(i+1), size); err != nil || code != http.StatusOK {
			t.Fatalf("PUT kept%d: %d %q %v", i, code, body, err)
		}
	}
	kept := func(i int) (int, error) {
		return headHash(newClient(10*time.Second), p.api, r.tgt.ID, r.src.ID, fmt.Sprintf("kept%d", i), sha256Hex(content(uint64(i+1), size)))
	}

	fillers := []string{filepath.Join(r.mnt, "filler1"), filepath.Join(r.mnt, "filler2")}
	fillUp(t, fillers[0])
	relaytest.Eventually(t, 10*time.Second, "the ballast released", func() bool {
		requireAlive(t, p, "disk filled while running")
		st, ok := statusNow(p)
		return ok && st.Status == "disk_full" && st.Disk != nil && st.Disk.BallastBytes == 0
	})
	if !strings.Contains(p.out.String(), "released the disk ballast") {
		t.Error("the log does not say the ballast was released")
	}
	n := fillUp(t, fillers[1])
	t.Logf("the other process took the ballast's %d MiB too: %d bytes free", n>>20, freeBytes(t, r.mnt))
	if code, err := kept(0); err != nil || code != http.StatusOK {
		t.Fatalf("HEAD with no byte free: %d %v", code, err)
	}
	code, body, err := r.put(t, p, "refused", 9, 64<<10)
	refusedWith507(t, p, "PUT with no byte free", filesPath(r.tgt.ID, r.src.ID, "refused"), code, body, err)
	requireAlive(t, p, "no byte free")

	p.kill9(t)
	p = startRelay(t, "relay (no room to open)", r.cfg, r.api, r.admin)
	st := diskFullStatus(t, p, 10*time.Second)
	if !strings.Contains(st.StatusReason, "to open the database") {
		t.Errorf("status does not say the database cannot open: %q", st.StatusReason)
	}
	t.Logf("restarted with no room to open: %s", st.StatusReason)
	code, body, err = r.put(t, p, "refused2", 10, 64<<10)
	refusedWith507(t, p, "PUT while the database cannot open", filesPath(r.tgt.ID, r.src.ID, "refused2"), code, body, err)
	if strings.Contains(p.out.String(), "SIGBUS") {
		t.Fatal("the relay crashed")
	}

	for _, f := range fillers {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	relaytest.Eventually(t, 20*time.Second, "the database opened once space is back", func() bool {
		requireAlive(t, p, "space freed")
		st, ok := statusNow(p)
		return ok && st.Status == "ok"
	})
	for i := range 4 {
		if code, err := kept(i); err != nil || code != http.StatusOK {
			t.Fatalf("HEAD kept%d once the database opened: %d %v", i, code, err)
		}
	}
	if code, body, err := r.put(t, p, "after", 11, 64<<10); err != nil || code != http.StatusOK {
		t.Fatalf("PUT once the database opened: %d %q %v", code, body, err)
	}
	requireAlive(t, p, "at the end")
	p.stop(t)
	t.Logf("took %s", time.Since(began).Round(time.Millisecond))
}
