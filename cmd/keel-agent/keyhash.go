package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/keel-relay/keel/internal/cli"
	"github.com/keel-relay/keel/internal/nodekey"
	"github.com/keel-relay/keel/internal/wire/keyhash"
)

// cmdKeyHash prints the key-hash of the node's key (key_file) as the node map carries it:
// sha256// and the base64 SHA-256 of the public key's SPKI DER. A relay refuses this node's
// shared files with 403 when its node map says another; `keel-relay nodes route NODE` shows
// the map's.
func cmdKeyHash(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("key-hash", flag.ContinueOnError)
	load := configFlags(fs)
	if !cli.NoArgs(fs, args, stderr, "keel-agent key-hash") {
		return 2
	}
	cfg, _, _, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "keel-agent: %v\n", err)
		return 1
	}
	key, err := nodekey.Load(cfg.KeyFile, cfg.KeyPassphrase)
	if err != nil {
		fmt.Fprintf(stderr, "keel-agent key-hash: %v\n", err)
		return 1
	}
	pin, err := keyhash.Of(&key.Private.PublicKey)
	if err != nil {
		fmt.Fprintf(stderr, "keel-agent key-hash: %s: %v\n", cfg.KeyFile, err)
		return 1
	}
	fmt.Fprintln(stdout, pin.String())
	return 0
}
