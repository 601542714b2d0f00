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
//	keel-relay reload [--config FILE]           reload the running relay, exit 1 with the reason if refused
//	keel-relay status | files ls | queue ls|retry|drop | nodes ls|route   inspection (inspect.go)
//	keel-relay version
//	keel-relay help [COMMAND ...]               the help of a command (or COMMAND --help)
//	keel-relay completion bash|zsh              the shell completion script
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
	"github.com/keel-relay/keel/internal/sdnotify"
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

// footer ends the program's --help.
const footer = `Without --config, %s is used if it exists, else the embedded default
(loopback listeners, data in ./keel-data). Environment variables KEEL_<SECTION>_<KEY>
override the file (e.g. KEEL_HTTP_LISTEN=0.0.0.0:3030).
`

// relayProgram is keel-relay's command table: the dispatch, --help, shell completion and the
// man page are all made from it. A new command is one entry: its name, synopsis, one-line
// summary, optional help text, and its func(args, stdout, stderr) int, which parses its
// flags with cli.Parse or cli.NoArgs before anything else.
func relayProgram() *cli.Program {
	return &cli.Program{
		Name: "keel-relay", Summary: "the Keel relay daemon", Footer: fmt.Sprintf(footer, config.DefaultPath()), Man: relayMan,
		Commands: []*cli.Command{
			{Name: "run", Args: "[--config FILE]", Summary: "serve in the foreground", Help: runHelp,
				Run: func(args []string, _, stderr io.Writer) int { return cmdRun(args, stderr) }},
			{Name: "check-config", Args: "[--config FILE]", Summary: "validate and print the effective config", Run: cmdCheckConfig},
			{Name: "backup", Args: "[--config FILE] [--progress] FILE|-", Summary: "write a backup of the whole store to FILE (-: stdout)", Help: backupHelp, Run: cmdBackup},
			{Name: "restore", Args: "[--config FILE] [--force] [--progress] FILE|-", Summary: "load a backup (relay stopped; --force replaces existing data; -: stdin)", Help: restoreHelp, Run: cmdRestore},
			{Name: "service", Summary: "install, control or run keel-relay as a system service", Help: serviceHelp, Sub: serviceCommand.Subcommands(cmdService)},
			{Name: "edge", Summary: "edge daemons: enrollment tokens and the admin commands", Help: edgeHelp, Sub: edgeCommands()},
			{Name: "uploads", Args: "[--failed] [--kind K] [--limit N] [--json] [--config FILE | --admin HOST:PORT]", Summary: "list the agents' uploads waiting for the upstream (--failed: kept aside)", Help: uploadsHelp, Run: cmdUploads},
			{Name: "reload", Args: "[--config FILE | --admin HOST:PORT]", Summary: "reload the running relay and wait: exit 1 with the reason if refused", Help: reloadHelp, Run: cmdReload},
			{Name: "status", Args: "[--json] [--timeout 3s] [--config FILE | --admin HOST:PORT]", Summary: "health, memory, store, queue, uploads, upstream, edge on one screen", Help: inspectHelp, Run: cmdStatus},
			{Name: "files", Summary: "the shared files stored here", Help: inspectHelp, Sub: []*cli.Command{
				{Name: "ls", Args: "[--limit N] [--json] [TARGET]", Summary: "list the shared files stored (for TARGET)", Run: filesLs},
			}},
			{Name: "queue", Summary: "the forward queue", Help: inspectHelp, Sub: []*cli.Command{
				{Name: "ls", Args: "[--limit N] [--json]", Summary: "list the queued forwards, next due first", Run: queueLs},
				{Name: "retry", Args: "ID", Summary: "make a queued forward due now", Run: queueRetry},
				{Name: "drop", Args: "ID", Summary: "drop a queued forward", Run: queueDrop},
			}},
			{Name: "nodes", Summary: "the node map in force", Help: inspectHelp, Sub: []*cli.Command{
				{Name: "ls", Args: "[--limit N] [--json]", Summary: "list the nodes and where each is routed", Run: nodesLs},
				{Name: "route", Args: "[--json] ID", Summary: "explain where a shared file for node ID goes, and why", Run: nodesRoute},
			}},
			{Name: "version", Summary: "print version information", Run: cmdVersion},
		},
	}
}

// run executes one command and returns the process exit code: 0 success, 1 failure,
// 2 usage error (see cli.ExitCodes).
func run(args []string, stdout, stderr io.Writer) int {
	return relayProgram().Run(args, stdout, stderr)
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	if !cli.NoArgs(flag.NewFlagSet("version", flag.ContinueOnError), args, stderr, "keel-relay version") {
		return 2
	}
	fmt.Fprintf(stdout, "keel-relay %s (commit %s, built %s, %s, %s/%s)\n", version, commit, date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
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
	srv    atomic.Pointer[relay.Server] // nil while the relay waits for disk space
	log    *slog.Logger
	notify *sdnotify.Notifier // systemd's notification socket (no-op when not under systemd)
	grace  time.Duration      // the config's shutdown_grace
	done   chan struct{}      // closed when Run has returned
	err    error              // Run's result, set before done is closed
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
// second one exits the process at once. It also feeds systemd's watchdog (WatchdogSec=) from
// this loop: a loop wedged in a reload, or gone, stops feeding it and systemd restarts the
// relay.
func (p *relayProcess) handleSignals(sigs <-chan os.Signal, stop func()) {
	stopping := false
	var watchdog <-chan time.Time
	if iv := p.notify.WatchdogInterval(); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		watchdog = t.C
		p.feedWatchdog()
	}
	for {
		select {
		case <-watchdog:
			p.feedWatchdog()
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

// feedWatchdog sends WATCHDOG=1, logging a failure.
func (p *relayProcess) feedWatchdog() {
	if err := p.notify.Watchdog(); err != nil {
		p.log.Warn("systemd watchdog not fed", "err", err)
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
	notify, err := sdnotify.New(os.Getenv)
	if err != nil {
		log.Warn("systemd watchdog off", "err", err)
	}
	build := relay.Build{Version: version, Commit: commit, Date: date}
	start := func() (*relay.Server, error) {
		return relay.New(cfg, relay.Options{
			ConfigPath: path, ConfigExplicit: explicit, Logger: log, LogLevel: level, Build: build,
			Notify: notify,
		})
	}
	srv, err := start()
	if err != nil && !errors.Is(err, storage.ErrNoSpace) {
		log.Error("cannot start", "err", err)
		return nil, fmt.Errorf("start relay: %w", err)
	}
	p := &relayProcess{log: log, notify: notify, grace: cfg.ShutdownGrace, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for errors.Is(err, storage.ErrNoSpace) {
			if werr := relay.WaitForDisk(ctx, cfg, build, notify, log); werr != nil {
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

// cmdBackup writes a backup of the store (FILE "-": to stdout). When the relay is running
// (the store is locked), the backup is taken online through the admin listener.
func cmdBackup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	load := configFlags(fs)
	showProgress := fs.Bool("progress", false, "report progress on stderr even when it is not a terminal")
	if !cli.Parse(fs, args, stderr) {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: keel-relay backup [--config FILE] [--progress] FILE|-")
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
		prog := startProgress(stderr, "backup", *showProgress, progressInterval)
		defer prog.done()
		w = prog.writer(w)
		store, err := openStore(cfg)
		if err == nil {
			err = relay.BackupStore(store, cfg.DataDir, w)
			if cerr := store.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				// Run as root, what the store wrote goes to the data directory's owner.
				err = fixOwnership(cfg.DataDir, io.Discard)
			}
			return err
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
	if dest == "-" {
		if err := write(stdout); err != nil {
			fmt.Fprintf(stderr, "keel-relay: backup: %v\n", err)
			return 1
		}
		fmt.Fprintln(stderr, "backup written to stdout")
		return 0
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
	showProgress := fs.Bool("progress", false, "report progress on stderr even when it is not a terminal")
	if !cli.Parse(fs, args, stderr) {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: keel-relay restore [--config FILE] [--force] [--progress] FILE|-")
		return 2
	}
	if *force && fs.Arg(0) == "-" {
		// A file is verified whole before --force drops the store; a stream cannot be.
		fmt.Fprintln(stderr, "keel-relay restore: --force needs a backup file, not stdin: it is checked whole before the store is dropped")
		return 2
	}
	cfg, _, _, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: %v\n", err)
		return 1
	}
	src, err := openBackup(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: restore: %v\n", err)
		return 1
	}
	defer src.Close()
	store, err := openStore(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: restore: %v (stop the relay first)\n", err)
		return 1
	}
	prog := startProgress(stderr, "restore", *showProgress, progressInterval)
	err = store.Restore(prog.reader(src.r), *force)
	prog.done()
	var key relay.SigningKeyRestore
	if err == nil {
		key, err = relay.RestoreSigningKey(store, cfg.DataDir)
	}
	files, jobs := store.FileCount(), store.JobCount()
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fixOwnership(cfg.DataDir, stdout)
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
