package main

// `keel-relay service ...`: the relay as a system service through kardianos/service. On
// Windows this is the way to run it (the Service Control Manager starts
// `keel-relay service run --config FILE`); on Linux the packaged systemd unit is the primary
// path, and `service install` is for machines where the binary was copied by hand.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kardianos/service"

	"github.com/keel-relay/keel/internal/svc"
	"github.com/keel-relay/keel/relay/config"
)

// stopMargin is added to shutdown_grace to bound Stop: the drain's worst case is the
// grace, 10s for cut handlers, 10s for remote runs to be killed, then closing the store.
const stopMargin = 30 * time.Second

const serviceUsage = `usage: keel-relay service ACTION [--config FILE] [--user NAME]

Actions:
  install     register keel-relay with the service manager (Windows SCM, systemd, ...) to run
              "keel-relay service run --config FILE" at boot; FILE must exist and set an
              absolute data_dir. Needs an elevated prompt / root.
  uninstall   remove that registration
  start, stop ask the service manager to start or stop it
  status      print running, stopped or not installed (exit 0 only when running)
  run         what the service manager executes: serve until told to stop

--user (Linux and Unix): the account the service runs as (default keel; it must exist).
On Windows the service runs as LocalSystem and logs to the Application event log.
`

// serviceCommand is `keel-relay service`.
var serviceCommand = svc.Command{
	Name:        "keel-relay",
	DisplayName: "Keel relay",
	Description: "Keel relay: serves the Rudder relay API to the nodes of a site and forwards the rest upstream.",
	Usage:       serviceUsage,
}

// cmdService runs `keel-relay service ACTION`.
func cmdService(args []string, stdout, stderr io.Writer) int {
	var (
		flags    *flag.FlagSet
		load     func() (*config.Config, string, bool, error)
		userName *string
	)
	action, code, ok := serviceCommand.ParseAction(args, stdout, stderr, func(fs *flag.FlagSet) {
		flags, load = fs, configFlags(fs)
		userName = fs.String("user", "keel", "Linux/Unix: the account the service runs as")
	})
	if !ok {
		return code
	}
	userSet := false
	flags.Visit(func(f *flag.Flag) { userSet = userSet || f.Name == "user" })
	if userSet && runtime.GOOS == "windows" {
		fmt.Fprintln(stderr, "keel-relay service: --user is not supported on Windows (the service runs as LocalSystem)")
		return 2
	}
	prog := &program{load: load, logOut: stderr, exit: os.Exit}
	install := func(conf *service.Config, systemd bool) error { return prepareInstall(conf, load, *userName, systemd) }
	return serviceCommand.Control(action, prog, install, stdout, stderr, &prog.logOut)
}

// prepareInstall checks the config the service will run with and fills in conf: the
// arguments the service manager passes, and on Linux/Unix the account and data directory.
func prepareInstall(conf *service.Config, load func() (*config.Config, string, bool, error), userName string, systemd bool) error {
	cfg, path, _, err := load()
	if err != nil {
		return err
	}
	if path == "" {
		return fmt.Errorf("no config file at %s (or given with --config): a service needs one, with an absolute data_dir", config.DefaultPath())
	}
	if path, err = filepath.Abs(path); err != nil {
		return fmt.Errorf("config path: %w", err)
	}
	if !filepath.IsAbs(cfg.DataDir) {
		return fmt.Errorf("%s: data_dir %q is relative; a service needs an absolute path", path, cfg.DataDir)
	}
	conf.Arguments = []string{"service", "run", "--config", path}
	if runtime.GOOS == "windows" {
		return nil
	}
	u, err := user.Lookup(userName)
	if err != nil {
		return fmt.Errorf("account %q: %w (create it, e.g. useradd --system --user-group --home-dir %s --shell /usr/sbin/nologin %s, or pass --user)", userName, err, cfg.DataDir, userName)
	}
	conf.UserName = userName
	if err := ownedDir(cfg.DataDir, u); err != nil {
		return err
	}
	if systemd {
		unit, err := serviceUnit(cfg.DataDir, path)
		if err != nil {
			return err
		}
		conf.Option["SystemdScript"] = unit
	}
	return nil
}

// ownedDir creates dir (0750) if needed and gives it to u: the service cannot create it
// itself under a read-only file system.
func ownedDir(dir string, u *user.User) error {
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("account %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("account %s: gid %q: %w", u.Username, u.Gid, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	return nil
}

// serviceUnit returns the systemd unit `service install` writes (a kardianos/service
// template): the packaged init/keel-relay.service, with the binary, config and data
// directory of this installation. TestServiceUnitMatchesPackagedUnit keeps the two in step.
func serviceUnit(dataDir, configPath string) (string, error) {
	if err := svc.UnitPaths(dataDir, configPath); err != nil {
		return "", err
	}
	return strings.NewReplacer("@DATA_DIR@", dataDir, "@CONFIG@", configPath).Replace(systemdUnitTemplate), nil
}

// systemdUnitTemplate is init/keel-relay.service for a hand-installed binary: the account
// comes from --user, the data directory from the config (created by install, since
// StateDirectory= only covers /var/lib).
var systemdUnitTemplate = svc.SystemdUnit(`Type=notify
NotifyAccess=main
WatchdogSec=30s
ExecReload={{Path | cmdEscape}} reload --config @CONFIG@
UMask=0027
LimitNOFILE=65536
MemoryMax=128M
ReadWritePaths=@DATA_DIR@
CapabilityBoundingSet=
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
PrivateDevices=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectKernelLogs=true
ProtectControlGroups=true
ProtectClock=true
ProtectHostname=true
ProtectProc=invisible
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=true
RestrictRealtime=true
RestrictSUIDSGID=true
RemoveIPC=true
LockPersonality=true
MemoryDenyWriteExecute=true
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
{{if UserName}}User={{UserName}}
{{end}}`)

// program is the relay as a kardianos/service program: Start serves in the background,
// Stop drains.
type program struct {
	load   func() (*config.Config, string, bool, error)
	logOut io.Writer
	exit   func(code int) // called when the relay stops without being asked to

	cancel context.CancelFunc
	proc   *relayProcess
}

// Start loads the config and starts the relay; it fails when the relay cannot start
// (bad config, port in use, store locked), so the service manager reports it.
func (p *program) Start(service.Service) error {
	cfg, path, explicit, err := p.load()
	if err != nil {
		fmt.Fprintf(p.logOut, "keel-relay: %v\n", err)
		return fmt.Errorf("load config: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	proc, err := launchRelay(ctx, cfg, path, explicit, p.logOut)
	if err != nil {
		cancel()
		return err
	}
	p.cancel, p.proc = cancel, proc
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		proc.handleSignals(hup, cancel)
		if ctx.Err() == nil {
			// A listener failed: exit non-zero so the service manager restarts us.
			proc.log.Error("relay stopped without being asked to; exiting")
			p.exit(1)
		}
	}()
	return nil
}

// Stop drains the relay and waits for it, at most shutdown_grace + stopMargin.
func (p *program) Stop(service.Service) error {
	if p.proc == nil {
		return nil
	}
	p.proc.log.Info("service stop: draining")
	p.cancel()
	bound := p.proc.grace + stopMargin
	select {
	case <-p.proc.done:
		return p.proc.err
	case <-time.After(bound):
		return fmt.Errorf("relay still draining after %s", bound)
	}
}
