//go:build linux

// Command report runs Keel's benchmark scenarios against the real keel-relay binary on
// loopback and reports each figure next to a limit of the machine, or a baseline, measured in
// the same run: shared-file PUT throughput against single-core SHA-256 and the disk's
// write+fsync speed, HEAD requests/s and latency (load from hey, a second process) against a
// bare net/http server, RSS at rest with many files stored and during concurrent PUTs, cold
// start, remote-run fan-out against its ideal time, the disk space returned after files
// expire, the edge API, the time and memory a big node map takes to load and keep, and the
// constrained section: small PUTs against 16 threads writing and fsyncing 1 KiB files, disk
// bytes written per content byte through expiry and value-log GC, and the relay with its
// defaults in a 64 MiB memory cgroup (small PUTs, 1 MiB PUTs, restart, edge daemons; OOM
// kills and peaks), skipped with a printed reason where no memory cgroup can be made; and the
// relay box: agents' uploads (HTTP Basic, bcrypt) from 16 clients and their delivery upstream
// against shared-file PUTs, and the RSS while they wait for a down upstream.
//
//	go run ./bench/cmd/report -out bench      # full sizes; writes bench/REPORT.md and bench/report.json
//	go run ./bench/cmd/report -quick          # small sizes, about a minute; report on stdout only
//	go run ./bench/cmd/report -only constrained  # one section (or several, comma-separated); stdout only
//
// The Markdown report always goes to stdout, progress to stderr. Figures never fail the run;
// errors (a relay that does not start, a request refused) do. Run it from the module root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/keel-relay/keel/bench/internal/rlimit"
)

func main() {
	quick := flag.Bool("quick", false, "small sizes (2,000 files, 128 MiB expiry, 100 nodes, hey -n 5000, 200 edge daemons, a 20,000-node map; constrained: 2,000 small PUTs, 20 × 1 MiB, 200 daemons; box: 300 uploads)")
	out := flag.String("out", "", "directory to write REPORT.md and report.json into (nothing written when empty)")
	command := flag.String("command", "", "how this run was started, as shown in the report (default: the go run command line)")
	base := flag.String("dir", os.Getenv("KEEL_BENCH_DIR"), "directory for the relays' data (default: the system temp dir; $KEEL_BENCH_DIR)")
	only := flag.String("only", "", "run only these scenarios, comma-separated: put, store, remote, expiry, edge, nodemap, constrained, box (default: all)")
	flag.Parse()
	if *command == "" {
		*command = strings.TrimSpace("go run ./bench/cmd/report " + strings.Join(os.Args[1:], " "))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p := fullParams()
	limit := 30 * time.Minute
	if *quick {
		p, limit = quickParams(), 5*time.Minute
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := run(ctx, log, p, *base, *out, *command, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench report:", err)
		os.Exit(1)
	}
}

// run builds the binaries, runs every scenario, prints the report and writes it to out.
func run(ctx context.Context, log *slog.Logger, p params, base, out, command, only string) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	if base == "" {
		base = os.TempDir()
	}
	work, err := os.MkdirTemp(base, "keel-bench-run-")
	if err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	defer os.RemoveAll(work)
	b := &bench{log: log, p: p, root: root, base: work, content: map[int][]byte{},
		rep: &Report{Date: time.Now(), Command: command, Quick: p.quick, Machine: describeMachine(work)}}
	b.rep.Machine.DataDir = base
	type scenario struct {
		name string
		run  func(context.Context) error
	}
	scenarios := []scenario{
		{"put", b.puts},
		{"store", b.store},
		{"remote", b.remoteRun},
		{"expiry", b.expiry},
		{"edge", b.edge},
		{"nodemap", b.nodeMaps},
		{"constrained", b.constrained},
		{"box", b.box},
	}
	selected := map[string]bool{}
	for _, name := range strings.Split(only, ",") {
		if name = strings.TrimSpace(name); name != "" {
			selected[name] = true
		}
	}
	if len(selected) > 0 && out != "" {
		return errors.New("-only makes a partial report: it cannot be written with -out")
	}
	for name := range selected {
		if !slices.ContainsFunc(scenarios, func(s scenario) bool { return s.name == name }) {
			return fmt.Errorf("-only %s: no such scenario (put, store, remote, expiry, edge, nodemap, constrained, box)", name)
		}
	}
	var failed []string
	start := time.Now()
	bin := filepath.Join(work, "bin")
	if b.relay, err = goBuild(ctx, root, bin, "./cmd/keel-relay"); err != nil {
		return err
	}
	if b.bare, err = goBuild(ctx, root, bin, "./bench/cmd/bareserver"); err != nil {
		return err
	}
	if b.edgeload, err = goBuild(ctx, root, bin, "./bench/cmd/edgeload"); err != nil {
		return err
	}
	if err := rlimit.RaiseNoFile(p.edgeN + 512); err != nil { // the relays and edgeload inherit it
		return fmt.Errorf("the edge scenario: %w", err)
	}
	if b.fleet, err = newFleet(max(p.storeNodes, p.rrNodes)); err != nil {
		return err
	}
	if err := b.measureLimits(); err != nil {
		return err
	}
	for _, s := range scenarios {
		if len(selected) > 0 && !selected[s.name] {
			continue
		}
		if ctx.Err() != nil {
			failed = append(failed, s.name+": "+ctx.Err().Error())
			continue
		}
		log.Info("scenario", "name", s.name)
		if err := s.run(ctx); err != nil {
			log.Error("scenario failed", "name", s.name, "err", err)
			failed = append(failed, s.name+": "+err.Error())
			b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("Scenario %q FAILED: %v", s.name, err))
		}
	}
	b.rep.Took = time.Since(start).Seconds()
	b.rep.Machine.LoadEnd = loadAvg()
	b.rep.Notes = append(b.rep.Notes, staticNotes()...)
	md := b.rep.Markdown()
	fmt.Print(md)
	if len(failed) > 0 {
		return fmt.Errorf("%d scenario(s) failed, nothing written:\n  %s", len(failed), strings.Join(failed, "\n  "))
	}
	if out == "" {
		return nil
	}
	js, err := b.rep.JSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "REPORT.md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, "report.json"), js, 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	log.Info("report written", "dir", out)
	return nil
}

// staticNotes explain figures whose reading is not obvious.
func staticNotes() []string {
	return []string{
		"A synced PUT returns after the file is on disk (storage.sync_writes: true), so its speed is bounded by the disk's write+fsync speed; " +
			"the tmpfs row takes the disk out and shows the relay's own cost against SHA-256.",
		"Badger maps its value-log files: pages it wrote count in the relay's RSS as clean, file-backed page cache (RssFile), " +
			"which the kernel reclaims under memory pressure; anonymous RSS (RssAnon) is the relay's own memory.",
		"hey and the server under test share the machine's CPUs, as do other processes: read HEAD figures as the relay against the bare server, " +
			"both loaded the same way in the same run.",
		"The disk of a virtual machine is shared: its write+fsync speed varies from one round to the next (the median of five is the limit), " +
			"so a PUT can come out faster than it.",
		"Space comes back after expiry because the cleaner's storage.CollectGarbage flushes Badger's memtable and compacts level 0 before " +
			"value-log GC: Badger picks the files to rewrite from discard statistics that only compaction produces, and the deletes of a " +
			"quiet relay would otherwise sit in the memtable. Writes wait while it flushes and while it rewrites a file.",
	}
}

// moduleRoot returns the directory of the main module (where go.mod is).
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the keel module (go env GOMOD is %q): run from the repository", gomod)
	}
	return filepath.Dir(gomod), nil
}

// goBuild builds pkg (relative to root) into dir as make build does: static, trimmed paths.
func goBuild(ctx context.Context, root, dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}
