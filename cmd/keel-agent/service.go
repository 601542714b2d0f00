package main

// `keel-agent service ...`: the agent as a system service through kardianos/service. On
// Windows this is the way to run it (the Service Control Manager starts
// `keel-agent service run --config FILE`); on Linux the packaged systemd unit is the primary
// path, and `service install` is for machines where the binary was copied by hand.
//
// What the service runs: the edge daemon when the config's edge section names a relay
// (edge.relay), else nothing: it waits to be stopped. The service runs as root (LocalSystem
// on Windows), as the Rudder agent does: the edge daemon's agent-run tool runs that agent.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kardianos/service"

	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/internal/svc"
)

// stopBound bounds Stop: the edge daemon drains its stream and cancels running tools.
const stopBound = 45 * time.Second

const serviceUsage = `usage: keel-agent service ACTION [--config FILE]

Actions:
  install     register keel-agent with the service manager (Windows SCM, systemd, ...) to run
              "keel-agent service run --config FILE" at boot, as root / LocalSystem; FILE
              must exist. Needs an elevated prompt / root.
  uninstall   remove that registration
  start, stop ask the service manager to start or stop it
  status      print running, stopped or not installed (exit 0 only when running)
  run         what the service manager executes: the edge daemon when edge.relay is set,
              else wait until told to stop

On Linux with the keel-agent package, use systemctl instead (the package's unit).
`

// serviceCommand is `keel-agent service`.
var serviceCommand = svc.Command{
	Name:        "keel-agent",
	DisplayName: "Keel agent",
	Description: "Keel agent: keeps this node's edge stream to its Keel relay and runs what the relay asks.",
	Usage:       serviceUsage,
}

// cmdService runs `keel-agent service ACTION`.
func cmdService(args []string, stdout, stderr io.Writer) int {
	var load configLoader
	action, code, ok := serviceCommand.ParseAction(args, stdout, stderr, func(fs *flag.FlagSet) { load = configFlags(fs) })
	if !ok {
		return code
	}
	prog := &program{load: load, logOut: stderr, exit: os.Exit}
	install := func(conf *service.Config, systemd bool) error { return prepareInstall(conf, load, systemd) }
	return serviceCommand.Control(action, prog, install, stdout, stderr, &prog.logOut)
}

// prepareInstall checks the config the service will run with and fills in conf: the
// arguments the service manager passes and, under systemd, the unit.
func prepareInstall(conf *service.Config, load configLoader, systemd bool) error {
	_, path, _, err := load()
	if err != nil {
		return err
	}
	if path == "" {
		return fmt.Errorf("no config file at %s (or given with --config): a service needs one", config.DefaultPath())
	}
	if path, err = filepath.Abs(path); err != nil {
		return fmt.Errorf("config path: %w", err)
	}
	conf.Arguments = []string{"service", "run", "--config", path}
	if systemd {
		unit, err := serviceUnit(path)
		if err != nil {
			return err
		}
		conf.Option["SystemdScript"] = unit
	}
	return nil
}

// serviceUnit returns the systemd unit `service install` writes (a kardianos/service
// template): the packaged init/keel-agent.service with this installation's binary and
// config. TestServiceUnitMatchesPackagedUnit keeps the two in step.
func serviceUnit(configPath string) (string, error) {
	if err := svc.UnitPaths(configPath); err != nil {
		return "", err
	}
	return strings.ReplaceAll(systemdUnitTemplate, "@CONFIG@", configPath), nil
}

// systemdUnitTemplate is init/keel-agent.service for a hand-installed binary.
var systemdUnitTemplate = svc.SystemdUnit(`Type=notify
NotifyAccess=main
UMask=0022
LimitNOFILE=65536
StateDirectory=keel-agent
StateDirectoryMode=0700
SystemCallArchitectures=native
LockPersonality=true
RestrictRealtime=true
`)

// program is the agent as a kardianos/service program.
type program struct {
	load   configLoader
	logOut io.Writer
	exit   func(code int) // called when the edge daemon stops without being asked to

	cancel context.CancelFunc
	done   chan struct{} // closed when the service's work has returned
	err    error         // its result, set before done is closed
	log    *slog.Logger
}

// Start loads the config and starts the service's work in the background: the edge daemon
// when edge.relay is set, else an idle wait. A bad config fails Start, so the service
// manager reports it.
func (p *program) Start(service.Service) error {
	cfg, path, _, err := p.load()
	if err != nil {
		fmt.Fprintf(p.logOut, "keel-agent: %v\n", err)
		return fmt.Errorf("load config: %w", err)
	}
	log := newLogger(cfg.Log, p.logOut)
	if path == "" {
		log.Info("no config file; using the embedded default", "looked_for", config.DefaultPath())
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done, p.log = cancel, make(chan struct{}), log
	go func() {
		defer close(p.done)
		if !cfg.Edge.Enabled() {
			log.Info("keel-agent service started; edge.relay is not set, so there is nothing to run: waiting to be stopped")
			if err := notifier(log).Ready("idle: edge.relay is not set"); err != nil {
				log.Warn("systemd notification not sent", "err", err)
			}
			<-ctx.Done()
			log.Info("keel-agent service stopped")
			return
		}
		log.Info("keel-agent service started: running the edge daemon", "relay", cfg.Edge.Relay)
		p.err = runEdgeDaemon(ctx, cfg, log)
		if ctx.Err() == nil && p.err == nil {
			log.Info("the edge daemon stopped as the relay asked (drain or shutdown); exiting")
			p.exit(0)
			return
		}
		if ctx.Err() == nil {
			log.Error("the edge daemon stopped without being asked to; exiting", "err", p.err)
			p.exit(1)
		}
	}()
	return nil
}

// Stop stops the service's work and waits for it, at most stopBound.
func (p *program) Stop(service.Service) error {
	if p.cancel == nil {
		return nil
	}
	p.log.Info("service stop")
	p.cancel()
	select {
	case <-p.done:
		return p.err
	case <-time.After(stopBound):
		return fmt.Errorf("keel-agent still stopping after %s", stopBound)
	}
}
