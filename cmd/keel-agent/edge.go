package main

// `keel-agent edge ...`: the edge daemon (package agent/edged). The subcommand table in
// main.go routes "edge" to cmdEdge; the service (service.go) calls runEdgeDaemon when the
// config's edge section names a relay.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/agent/edged"
	"github.com/keel-relay/keel/internal/cli"
	"github.com/keel-relay/keel/internal/sdnotify"
)

const edgeUsage = `usage: keel-agent edge ACTION [flags]

Actions:
  enroll --relay HOST:PORT --token JWT [--force] [--config FILE]
              generate this node's edge key (edge.key_file, 0600), attest it to the relay
              with the enrollment token (keel-relay edge enroll-token) and store the node
              security token it issues (edge.token_file, 0600). --relay defaults to
              edge.relay; --force replaces an existing key.
  run [--config FILE]
              keep the ConnectEdge stream to edge.relay up and run what the relay invokes
              (agent-run, and shell when edge.tools.shell.enabled). Stops on SIGINT/SIGTERM,
              or when the relay sends Drain or Shutdown (exit 0).
  rotate-key [--relay HOST:PORT] [--config FILE]
              replace the edge key (RotateEdgeKey); a running daemon picks the new key up.
`

// cmdEdge runs `keel-agent edge ACTION ...`.
func cmdEdge(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := stderr
		if len(args) > 0 {
			w = stdout
		}
		fmt.Fprint(w, edgeUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	action, args := args[0], args[1:]
	fs := flag.NewFlagSet("edge "+action, flag.ContinueOnError)
	load := configFlags(fs)
	var relay, token *string
	var force *bool
	switch action {
	case "enroll":
		relay = fs.String("relay", "", "the relay's edge listener, HOST:PORT (default edge.relay)")
		token = fs.String("token", "", "the enrollment token (JWT); \"-\" reads it from standard input")
		force = fs.Bool("force", false, "replace an existing key")
	case "rotate-key":
		relay = fs.String("relay", "", "the relay's edge listener, HOST:PORT (default edge.relay)")
	case "run":
	default:
		fmt.Fprintf(stderr, "keel-agent edge: unknown action %q\n\n%s", action, edgeUsage)
		return 2
	}
	if !cli.NoArgs(fs, args, stderr, "keel-agent edge "+action) {
		return 2
	}
	cfg, _, _, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "keel-agent: %v\n", err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if relay != nil && *relay == "" {
		*relay = cfg.Edge.Relay
	}
	if relay != nil && *relay == "" {
		fmt.Fprintf(stderr, "keel-agent edge %s: no relay: give --relay HOST:PORT or set edge.relay\n", action)
		return 2
	}
	switch action {
	case "enroll":
		tok := *token
		if tok == "-" {
			b, err := io.ReadAll(io.LimitReader(os.Stdin, 16<<10))
			if err != nil {
				fmt.Fprintf(stderr, "keel-agent edge enroll: reading the token: %v\n", err)
				return 1
			}
			tok = string(trimNewline(b))
		}
		if tok == "" {
			fmt.Fprintln(stderr, "keel-agent edge enroll: --token is required")
			return 2
		}
		creds, err := edged.Enroll(ctx, cfg, edged.EnrollRequest{Relay: *relay, Token: tok, Force: *force}, log)
		if err != nil {
			fmt.Fprintf(stderr, "keel-agent edge enroll: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "enrolled: node %s, token valid until %s\n", creds.NodeID, creds.Claims.Expiry.Format(time.RFC3339))
		if cfg.Edge.Relay != *relay {
			fmt.Fprintf(stdout, "note: set edge.relay: %q in the config for keel-agent edge run\n", *relay)
		}
		return 0
	case "rotate-key":
		creds, _, err := edged.RotateKey(ctx, *relay, cfg.Edge, log)
		if err != nil {
			fmt.Fprintf(stderr, "keel-agent edge rotate-key: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "key rotated: node %s, token valid until %s\n", creds.NodeID, creds.Claims.Expiry.Format(time.RFC3339))
		return 0
	}
	if !cfg.Edge.Enabled() {
		fmt.Fprintln(stderr, "keel-agent edge run: edge.relay is not set")
		return 2
	}
	if err := runEdgeDaemon(ctx, cfg, log); err != nil {
		fmt.Fprintf(stderr, "keel-agent edge run: %v\n", err)
		return 1
	}
	return 0
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// runEdgeDaemon runs the edge daemon with cfg until ctx is done or the relay sends Drain
// or Shutdown; the service calls it when cfg.Edge.Enabled(). It returns nil when stopped
// either way. Under systemd (Type=notify), it says when the daemon has started.
func runEdgeDaemon(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	d, err := edged.New(cfg, edged.Options{Notify: notifier(log)}, log)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// notifier returns systemd's notification socket of this process (a no-op when not under
// systemd); the agent's unit sets no watchdog.
func notifier(log *slog.Logger) *sdnotify.Notifier {
	n, err := sdnotify.New(os.Getenv)
	if err != nil {
		log.Warn("systemd watchdog setting ignored", "err", err)
	}
	return n
}
