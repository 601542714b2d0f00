package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/keel-relay/keel/edge/keys"
	edgeserver "github.com/keel-relay/keel/edge/server"
	"github.com/keel-relay/keel/internal/cli"
)

// maxEnrollTTL bounds the lifetime of an enrollment token made by the CLI.
const maxEnrollTTL = 30 * 24 * time.Hour

// edgeCommands are the subcommands of `keel-relay edge`.
func edgeCommands() []*cli.Command {
	return append([]*cli.Command{
		{Name: "enroll-token", Args: "--tenant T [--label L] [--ttl 15m] [--config FILE]", Summary: "print an enrollment token signed by this relay",
			Help: `Print on stdout an enrollment token (a JWT, single use) signed with the relay's edge key
(created in data_dir when missing); keel-agent edge enroll --token uses it. The key file is
outside the database, so this works while the relay runs.`, Run: edgeEnrollToken},
	}, edgeAdminCommands()...)
}

// edgeEnrollToken prints an enrollment JWT signed with the relay's edge key (read from, or
// created in, data_dir). The key file is outside the database, so this works while the
// relay runs.
func edgeEnrollToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge enroll-token", flag.ContinueOnError)
	load := configFlags(fs)
	tenant := fs.String("tenant", "", "tenant the daemon is bound to (required)")
	label := fs.String("label", "", "display label of the daemon (the token's sub)")
	ttl := fs.Duration("ttl", 15*time.Minute, "how long the token may be used")
	if !cli.NoArgs(fs, args, stderr, "keel-relay edge enroll-token") {
		return 2
	}
	switch {
	case *tenant == "":
		fmt.Fprintln(stderr, "keel-relay edge enroll-token: --tenant is required")
		return 2
	case *ttl <= 0 || *ttl > maxEnrollTTL:
		fmt.Fprintf(stderr, "keel-relay edge enroll-token: --ttl must be > 0 and <= %s\n", maxEnrollTTL)
		return 2
	}
	cfg, _, _, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: %v\n", err)
		return 1
	}
	key, err := keys.LoadOrCreate(edgeserver.SigningKeyPath(cfg.DataDir))
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: %v\n", err)
		return 1
	}
	tok, c, err := edgeserver.EnrollmentToken(key, keys.Issuer(cfg.NodeID), *tenant, *label, *ttl, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	fmt.Fprintf(stderr, "enrollment token %s for tenant %q, valid until %s (single use)\n", c.ID, c.Tenant, c.Expiry.Format(time.RFC3339))
	return 0
}
