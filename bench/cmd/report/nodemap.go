//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keel-relay/keel/relay/httpapi"
)

const nodeMapSection = "Node map load (parse, check, keep in the store)"

// nodeMaps loads a generated node map of nodeMapNodes entries (then, at full size, one of
// bigNodeMapNodes) into a relay started on a 3-node map, through POST .../system/reload, which
// answers once the map is parsed, checked, in force and kept in the store.
func (b *bench) nodeMaps(ctx context.Context) error {
	sizes := []int{b.p.nodeMapNodes}
	if b.p.bigNodeMapNodes > 0 {
		sizes = append(sizes, b.p.bigNodeMapNodes)
	}
	for _, n := range sizes {
		// The goal (issue 12): 100,000 nodes parsed, checked and kept in < 2 s, < 64 MiB more RSS.
		if err := b.nodeMapLoad(ctx, n, n == 100_000); err != nil {
			return err
		}
	}
	return nil
}

// nodeMapLoad measures one load of an n-entry map, against the goals when withGoals.
func (b *bench) nodeMapLoad(ctx context.Context, n int, withGoals bool) error {
	p, dir, err := b.startRelayIn(ctx, "", "nodemap", relayConfig{nodes: b.fleet.nodeMap(2)})
	defer os.RemoveAll(dir) // also when the relay did not start; "" removes nothing
	if err != nil {
		return err
	}
	defer p.stop()
	// The map is written next to the one in force, then renamed over it, as a policy server does.
	nodesPath := filepath.Join(dir, "nodes.json")
	tmp := nodesPath + ".new"
	size, digest, err := writeNodeMap(tmp, n, b.fleet.pin)
	if err != nil {
		return err
	}
	if _, err := waitIdle(ctx, p.pid(), 30*time.Second); err != nil {
		return err
	}
	before, err := processMemory(p.pid())
	if err != nil {
		return err
	}
	peakNote := b.resetPeakNote(p.pid(), "VmHWM reset through /proc/PID/clear_refs before the reload, read after it answered",
		"VmHWM read after the reload (it could not be reset before: it includes the start-up peak)")
	ioBefore, ioErr := processWriteBytes(p.pid())
	if err := os.Rename(tmp, nodesPath); err != nil {
		return fmt.Errorf("install node map: %w", err)
	}
	stopSampling := sampleMemory(p.pid())
	start := time.Now()
	_, err = do(ctx, newClient(1), http.MethodPost, p.url+api+"/1/system/reload", nil, http.StatusOK)
	took := time.Since(start)
	sampled := stopSampling() // highest anonymous and file-backed RSS seen during the reload
	if err != nil {
		return fmt.Errorf("reload a %d-node map: %w", n, err)
	}
	peak, err := processMemory(p.pid())
	if err != nil {
		return err
	}
	written := int64(-1)
	if ioAfter, err := processWriteBytes(p.pid()); err == nil && ioErr == nil {
		written = ioAfter - ioBefore
	}
	st, err := relayStatus(ctx, p)
	if err != nil {
		return fmt.Errorf("status after the reload: %w", err)
	}
	if st.NodeMap.Nodes != n || st.NodeMap.Digest != digest {
		return fmt.Errorf("reload a %d-node map: status says %d nodes, digest %s; want %d, %s (last error %q)",
			n, st.NodeMap.Nodes, st.NodeMap.Digest, n, digest, st.NodeMap.LastError)
	}
	busy, err := waitIdle(ctx, p.pid(), time.Minute)
	if err != nil {
		return err
	}
	after, err := processMemory(p.pid())
	if err != nil {
		return err
	}
	label := thousands(float64(n)) + " nodes"
	fmib := func(v int64) float64 { return float64(v) / mib }
	extra := peak.HWM - before.RSS
	cmd := fmt.Sprintf("a generated map of %s (%.0f MB: root, 5 relays, the rest spread below them; UUID ids, sha256// key hashes) "+
		"renamed over the 3-node map of a relay at rest, then `POST %s/1/system/reload`, which answers once the map is parsed, "+
		"checked, in force and kept in the store; wall time of the call", label, float64(size)/mb, api)
	name := fmt.Sprintf("nodemap_%dk", n/1000)
	if n >= 1_000_000 {
		name = fmt.Sprintf("nodemap_%dm", n/1_000_000)
	}
	t := b.rep.add(Scenario{Name: name + "_load", Section: nodeMapSection, Title: label + ": parse, check and keep", Unit: "s",
		Command: cmd}, took.Seconds())
	if withGoals {
		t.against("goal", 2, "s").goal("< 2 s", took < 2*time.Second)
	}
	x := b.rep.add(Scenario{Name: name + "_extra_rss", Section: nodeMapSection, Title: "… extra RSS at its peak", Unit: "MiB",
		Command: "peak RSS during the reload minus VmRSS at rest before it; " + peakNote}, fmib(extra)).
		against("RSS at rest before, 3-node map", fmib(before.RSS), "MiB")
	if withGoals {
		x.goal("< 64 MiB", extra < 64*mib)
	}
	b.rep.add(Scenario{Name: name + "_peak_rss", Section: nodeMapSection, Title: "… peak RSS", Unit: "MiB",
		Command: "VmHWM, same reading"}, fmib(peak.HWM))
	b.rep.add(Scenario{Name: name + "_peak_anon", Section: nodeMapSection, Title: "… peak anonymous RSS (heap)", Unit: "MiB",
		Command: "highest RssAnon sampled every 10 ms during the reload; baseline: at rest before"}, fmib(sampled.Anon)).
		against("at rest before", fmib(before.Anon), "MiB")
	b.rep.add(Scenario{Name: name + "_peak_file", Section: nodeMapSection, Title: "… peak file-backed RSS (value-log pages written)", Unit: "MiB",
		Command: "highest RssFile + RssShmem sampled every 10 ms during the reload; baseline: at rest before"}, fmib(sampled.File)).
		against("at rest before", fmib(before.File), "MiB")
	b.rep.add(Scenario{Name: name + "_rss_after", Section: nodeMapSection, Title: "… RSS once idle again", Unit: "MiB",
		Command: fmt.Sprintf("VmRSS once the relay's CPU time stopped growing (it stayed busy %.1f s after the reload answered)", busy.Seconds()),
		Note:    fmt.Sprintf("Of which anonymous (heap, stacks): %.0f MiB.", fmib(after.Anon))}, fmib(after.RSS)).
		against("RSS at rest before, 3-node map", fmib(before.RSS), "MiB")
	if written >= 0 {
		b.rep.add(Scenario{Name: name + "_written", Section: nodeMapSection, Title: "… bytes the relay wrote to disk", Unit: "MB",
			Command: "write_bytes from /proc/PID/io, after the reload minus before (the store's writes and the relay's log)"}, float64(written)/mb).
			against("size of the map file", float64(size)/mb, "MB")
	}
	b.log.Info("node map load", "nodes", n, "took", took.Round(time.Millisecond), "rss_before_MiB", before.RSS/mib,
		"VmHWM_MiB", peak.HWM/mib, "rss_after_MiB", after.RSS/mib, "written_MB", math.Round(float64(written)/mb))
	return nil
}

// writeNodeMap writes a node map of n entries to path (the bare-object shape): "root", up to 5
// relays under it, and the other nodes spread below root and the relays, each with a UUID-like
// id and its own sha256// key hash except that every node pins pin, so that any could sign.
// It returns the file's size and hex SHA-256.
func writeNodeMap(path string, n int, pin string) (int64, string, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, "", fmt.Errorf("write node map: %w", err)
	}
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	relays := min(5, max(n-1, 0))
	parents := []string{"root"}
	entry := func(first bool, id, host, parent, key string) {
		if !first {
			w.WriteString(",\n")
		}
		q := func(s string) string { j, _ := json.Marshal(s); return string(j) }
		fmt.Fprintf(w, "%s:{\"hostname\":%s,\"policy-server\":%s,\"key-hash\":%s}", q(id), q(host), q(parent), q(key))
	}
	w.WriteString("{")
	entry(true, "root", "root.bench.example.org", "root", pin)
	for i := 1; i < n; i++ {
		id := benchUUID(i)
		parent := parents[i%len(parents)]
		key := pin
		if i > relays {
			sum := sha256.Sum256([]byte(id))
			key = "sha256//" + base64.StdEncoding.EncodeToString(sum[:])
		}
		entry(false, id, fmt.Sprintf("node-%07d.bench.example.org", i), parent, key)
		if i <= relays {
			parents = append(parents, id)
		}
	}
	w.WriteString("}\n")
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, "", fmt.Errorf("write node map: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, "", fmt.Errorf("write node map: %w", err)
	}
	return st.Size(), hex.EncodeToString(h.Sum(nil)), nil
}

// benchUUID returns a UUID-shaped node id for index i (version 4 layout, deterministic).
func benchUUID(i int) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(i)))
	x := hex.EncodeToString(sum[:16])
	return strings.Join([]string{x[:8], x[8:12], "4" + x[13:16], "8" + x[17:20], x[20:32]}, "-")
}

// relayStatus reads the relay's status route.
func relayStatus(ctx context.Context, p *relayProc) (httpapi.Status, error) {
	var st httpapi.Status
	body, err := do(ctx, newClient(1), http.MethodGet, p.url+statusPath, nil, http.StatusOK)
	if err == nil {
		st, err = httpapi.DecodeStatus(body)
	}
	if err != nil {
		return httpapi.Status{}, fmt.Errorf("relay status: %w", err)
	}
	return st, nil
}

// processWriteBytes returns the bytes pid caused to be written to storage (write_bytes in
// /proc/PID/io).
func processWriteBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, fmt.Errorf("read /proc/%d/io: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			var n int64
			if _, err := fmt.Sscan(v, &n); err != nil {
				return 0, fmt.Errorf("/proc/%d/io: %q: %w", pid, line, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/io has no write_bytes", pid)
}
