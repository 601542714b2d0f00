// Command keel-relay is the Keel relay daemon: it serves the Rudder-compatible relay API
// for the nodes below it and forwards what is not theirs to the next hop.
//
// Usage:
//
//	keel-relay run [--config FILE]            serve in the foreground
//	keel-relay check-config [--config FILE]   validate and print the effective config
//	keel-relay backup [--config FILE] FILE     write a backup of the store
//	keel-relay restore [--config FILE] [--force] FILE   load a backup into the store
//	keel-relay service ACTION [--config FILE]   install|uninstall|start|stop|status as a system service
//	keel-relay edge SUBCOMMAND ...              edge daemons: enroll-token, and the admin commands
//	keel-relay uploads [--failed] [--limit N]   agents' uploads kept for the upstream (waiting or failed)
//	keel-relay version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keel-relay/keel/internal/cli"
	"github.com/keel-relay/keel/internal/fsutil"
	"github.com/keel-relay/keel/internal/logging"
	"github.com/keel-relay/keel/internal/membudget"
	"github.com/keel-relay/keel/internal/svc"
	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/admintoken"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/storage"
)

// Set at link time: -X main.version=... -X main.commit=... -X main.date=...
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `keel-relay — the Keel relay daemon

Usage:
  keel-relay run [--config FILE]                      serve in the foreground
  keel-relay check-config [--config FILE]             validate and print the effective config
  keel-relay backup [--config FILE] FILE              write a backup of the whole store to FILE
  keel-relay restore [--config FILE] [--force] FILE   load a backup (relay stopped; --force replaces existing data)
  keel-relay service install [--config FILE] [--user NAME]
                                                      install as a system service (Windows: the way to run it)
  keel-relay service uninstall|start|stop|status      manage that service
  keel-relay edge enroll-token --tenant T [--label L] [--ttl 15m] [--config FILE]
                                                      print an edge enrollment token (see "keel-relay edge")
  keel-relay uploads [--failed] [--kind K] [--limit N] [--json] [--config FILE | --admin HOST:PORT]
                                                      list the agents' uploads waiting for the upstream (--failed: kept aside)
  keel-relay version                                  print version information

Without --config, %s is used if it exists, else the embedded default
(loopback listeners, data in ./keel-data). Environment variables KEEL_<SECTION>_<KEY>
override the file (e.g. KEEL_HTTP_LISTEN=0.0.0.0:3030).
`

// run executes one command and returns the process exit code: 0 success, 1 failure,
// 2 usage error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, config.DefaultPath())
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(args, stderr)
	case "check-config":
		return cmdCheckConfig(args, stdout, stderr)
	case "backup":
		return cmdBackup(args, stdout, stderr)
	case "restore":
		return cmdRestore(args, stdout, stderr)
	case "service":
		return cmdService(args, stdout, stderr)
	case "edge":
		return cmdEdge(args, stdout, stderr)
	case "uploads":
		return cmdUploads(args, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "keel-relay %s (commit %s, built %s, %s, %s/%s)\n", version, commit, date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "--help":
		fmt.Fprintf(stdout, usage, config.DefaultPath())
		return 0
	default:
		fmt.Fprintf(stderr, "keel-relay: unknown command %q\n\n", cmd)
		fmt.Fprintf(stderr, usage, config.DefaultPath())
		return 2
	}
}

// configFlags registers --config on fs and returns a loader for it.
func configFlags(fs *flag.FlagSet) func() (*config.Config, string, bool, error) {
	return cli.ConfigFlag(fs, config.DefaultPath, config.Load)
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	load := configFlags(fs)
	if !cli.NoArgs(fs, args, stderr, "keel-relay run") {
		return 2
	}
	cfg, path, explicit, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: %v\n", err)
		return 1
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	proc, err := launchRelay(ctx, cfg, path, explicit, stderr)
	if err != nil {
		return 1
	}
	go proc.handleSignals(sigs, stop)
	if proc.wait() != nil {
		return 1
	}
	return 0
}

// relayProcess is a relay serving in the background, as started by launchRelay.
type relayProcess struct {
	srv   atomic.Pointer[relay.Server] // nil while the relay waits for disk space
	log   *slog.Logger
	grace time.Duration // the config's shutdown_grace
	done  chan struct{} // closed when Run has returned
	err   error         // Run's result, set before done is closed
}

// reload reloads the relay (SIGHUP); a relay still waiting for disk space reads its config
// when it starts.
func (p *relayProcess) reload() {
	srv := p.srv.Load()
	if srv == nil {
		p.log.Info("SIGHUP while waiting for disk space: the config is read again when the relay starts")
		return
	}
	p.log.Info("SIGHUP: reloading")
	_ = srv.Reload()
}

// handleSignals serves the signals that come on sigs until the relay has stopped: SIGHUP
// reloads it; the first other signal (SIGTERM, interrupt) calls stop to drain it, and a
// second one exits the process at once.
func (p *relayProcess) handleSignals(sigs <-chan os.Signal, stop func()) {
	stopping := false
	for {
		select {
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				p.reload()
			case stopping:
				p.log.Warn("second stop signal: exiting now without draining", "signal", sig.String())
				os.Exit(1)
			default:
				p.log.Info("stop signal: draining", "signal", sig.String())
				stopping = true
				stop()
			}
		case <-p.done:
			return
		}
	}
}

// launchRelay builds the relay from cfg (read from path, "" = embedded default), logging to
// logOut, and serves it in the background until ctx is done. It is what `run` and the
// service share. A relay that cannot start is logged and returned as an error, except one
// whose store cannot open because the disk is full: exiting would only have the service
// manager restart it in a loop, and give up. That one waits in the background for space
// (relay.WaitForDisk: status says why, uploads get 507), then starts.
func launchRelay(ctx context.Context, cfg *config.Config, path string, explicit bool, logOut io.Writer) (*relayProcess, error) {
	log, level := logging.New(cfg.Log.Level, cfg.Log.Format, logOut)
	if path == "" {
		log.Info("no config file; using the embedded default", "looked_for", config.DefaultPath())
	} else {
		log.Info("config loaded", "file", path)
	}
	build := relay.Build{Version: version, Commit: commit, Date: date}
	start := func() (*relay.Server, error) {
		return relay.New(cfg, relay.Options{
			ConfigPath: path, ConfigExplicit: explicit, Logger: log, LogLevel: level, Build: build,
		})
	}
	srv, err := start()
	if err != nil && !errors.Is(err, storage.ErrNoSpace) {
		log.Error("cannot start", "err", err)
		return nil, fmt.Errorf("start relay: %w", err)
	}
	p := &relayProcess{log: log, grace: cfg.ShutdownGrace, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for errors.Is(err, storage.ErrNoSpace) {
			if werr := relay.WaitForDisk(ctx, cfg, build, log); werr != nil {
				if ctx.Err() == nil {
					p.err = werr
					log.Error("cannot wait for disk space", "err", werr)
				}
				return
			}
			srv, err = start()
		}
		if err != nil {
			p.err = err
			log.Error("cannot start", "err", err)
			return
		}
		p.srv.Store(srv)
		if p.err = srv.Run(ctx); p.err != nil {
			log.Error("stopped with an error", "err", p.err)
		}
	}()
	return p, nil
}

// wait blocks until the relay has stopped and returns Run's result.
func (p *relayProcess) wait() error {
	<-p.done
	return p.err
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	cfg, code := svc.CheckConfigCommand(args, stdout, stderr, "keel-relay", "KEEL_*", configFlags)
	if code != 0 {
		return code
	}
	printMemoryPlan(stdout, cfg)
	return 0
}

// printMemoryPlan prints, as YAML comments, the memory budget the relay would run under
// here, where it comes from, and how it is split.
func printMemoryPlan(w io.Writer, cfg *config.Config) {
	plan, warnings := relay.MemoryPlan(cfg)
	budget := "none known"
	if plan.Bytes > 0 {
		budget = membudget.FormatBytes(plan.Bytes)
	}
	fmt.Fprintf(w, "# memory budget: %s (from %s)\n# memory split: %s\n", budget, plan.Source, plan)
	for _, l := range plan.Lowered {
		fmt.Fprintf(w, "# memory: lowered %s\n", l)
	}
	for _, warning := range warnings {
		fmt.Fprintf(w, "# memory warning: %s\n", warning)
	}
}

// cmdBackup writes a backup of the store. When the relay is running (the store is locked),
// the backup is taken online through the admin listener.
func cmdBackup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	load := configFlags(fs)
	if !cli.Parse(fs, args, stderr) {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: keel-relay backup [--config FILE] FILE")
		return 2
	}
	dest := fs.Arg(0)
	cfg, _, _, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: %v\n", err)
		return 1
	}
	// Opening the store would create an empty one: a wrong data_dir must not yield a
	// "successful" empty backup.
	if _, err := os.Stat(cfg.DataDir); err != nil {
		fmt.Fprintf(stderr, "keel-relay: backup: nothing to back up: %v\n", err)
		return 1
	}
	write := func(w io.Writer) error {
		store, err := openStore(cfg)
		if err == nil {
			defer store.Close()
			return relay.BackupStore(store, cfg.DataDir, w)
		}
		if cfg.Admin.Listen == "" {
			return fmt.Errorf("%w (and admin.listen is disabled, so no online backup)", err)
		}
		fmt.Fprintf(stderr, "store in use (%v); taking an online backup through %s\n", err, cfg.Admin.Listen)
		tok, err := adminToken(cfg)
		if err != nil {
			return err
		}
		return onlineBackup(cfg.Admin.Listen, tok, w)
	}
	if err := writeAtomic(dest, write); err != nil {
		fmt.Fprintf(stderr, "keel-relay: backup: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "backup written to %s\n", dest)
	return 0
}

func onlineBackup(admin string, tok admintoken.Token, w io.Writer) error {
	client := &http.Client{Timeout: time.Hour, Transport: &http.Transport{Proxy: nil}}
	req, err := http.NewRequest(http.MethodGet, "http://"+admin+"/backup", nil)
	if err != nil {
		return fmt.Errorf("online backup: %w", err)
	}
	tok.Set(req)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("online backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("online backup: admin listener answered %s", resp.Status)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("online backup: %w", err)
	}
	return nil
}

// writeAtomic writes a file (mode 0600) through a temporary file, synced and renamed into
// place (package fsutil), so a failed backup never leaves a truncated file under the final
// name.
func writeAtomic(dest string, write func(io.Writer) error) error {
	return fsutil.WriteAtomic(dest, 0o600, func(f *os.File) error { return write(f) })
}

func cmdRestore(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	load := configFlags(fs)
	force := fs.Bool("force", false, "replace the data already in the store")
	if !cli.Parse(fs, args, stderr) {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: keel-relay restore [--config FILE] [--force] FILE")
		return 2
	}
	cfg, _, _, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: %v\n", err)
		return 1
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: restore: %v\n", err)
		return 1
	}
	defer f.Close()
	store, err := openStore(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: restore: %v (stop the relay first)\n", err)
		return 1
	}
	err = store.Restore(f, *force)
	var key relay.SigningKeyRestore
	if err == nil {
		key, err = relay.RestoreSigningKey(store, cfg.DataDir)
	}
	files, jobs := store.FileCount(), store.JobCount()
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored %s into %s: %d files, %d queued forwards\n", fs.Arg(0), cfg.DataDir, files, jobs)
	switch {
	case key.Replaced:
		fmt.Fprintf(stdout, "edge signing key restored to %s (it replaced a different key: tokens that key signed are no longer valid here)\n", key.Path)
	case key.Restored:
		fmt.Fprintf(stdout, "edge signing key restored to %s\n", key.Path)
	}
	return 0
}

func openStore(cfg *config.Config) (*storage.Store, error) {
	log, _ := logging.New("warn", cfg.Log.Format, os.Stderr)
	return storage.Open(relay.StorageOptions(cfg), log)
}
