package main

// share, has and fetch: the shared-files commands.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/keel-relay/keel/agent"
	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/agent/sharedfile"
	"github.com/keel-relay/keel/internal/cli"
	"github.com/keel-relay/keel/internal/wire/ids"
	"github.com/keel-relay/keel/internal/wire/ttl"
)

// identity returns the node identity cfg describes.
func identity(cfg *config.Config) (sharedfile.Identity, error) {
	return agent.LoadIdentity(cfg)
}

// fileCmd is what share, has and fetch have in common: flags, config, client.
type fileCmd struct {
	name string
	fs   *flag.FlagSet
	load configLoader
}

func newFileCmd(name string) *fileCmd {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return &fileCmd{name: name, fs: fs, load: configFlags(fs)}
}

// usageErr reports a usage error and returns its exit code, 2.
func (c *fileCmd) usageErr(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "keel-agent %s: %s\n", c.name, fmt.Sprintf(format, args...))
	fmt.Fprintf(stderr, "Run 'keel-agent %s --help' for usage.\n", c.name)
	return 2
}

// client loads the config and builds the shared-files client, with a context cancelled
// by SIGINT or SIGTERM, so an interrupted transfer stops cleanly (a fetch removes its
// temporary file); done stops watching the signals and closes the client. On failure it
// reports why on stderr.
func (c *fileCmd) client(stderr io.Writer) (ctx context.Context, cl *sharedfile.Client, done func(), err error) {
	cfg, _, _, err := c.load()
	if err != nil {
		fmt.Fprintf(stderr, "keel-agent %s: %v\n", c.name, err)
		return nil, nil, nil, err
	}
	cl, err = agent.NewClient(cfg, newLogger(cfg.Log, stderr))
	if err != nil {
		fmt.Fprintf(stderr, "keel-agent %s: %v\n", c.name, err)
		return nil, nil, nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return ctx, cl, func() { stop(); cl.Close() }, nil
}

func cmdShare(args []string, stdout, stderr io.Writer) int {
	c := newFileCmd("share")
	to := c.fs.String("to", "", "target node id (required)")
	id := c.fs.String("id", "", "file id under which the target finds the file (required)")
	ttlText := c.fs.String("ttl", "1d", `how long the relay keeps the file ("1d", "2h 30m", "3600")`)
	if code := c.parseArgs(args, stderr, "--to", to, id, "PATH"); code != 0 {
		return code
	}
	if _, err := ttl.Parse(*ttlText); err != nil {
		return c.usageErr(stderr, "--ttl: %v", err)
	}
	path := c.fs.Arg(0)
	ctx, cl, done, err := c.client(stderr)
	if err != nil {
		return 1
	}
	defer done()
	res, err := cl.Share(ctx, *to, *id, path, *ttlText)
	if err != nil {
		fmt.Fprintf(stderr, "keel-agent share: %s to %s as %s: %v\n", path, *to, *id, err)
		return 1
	}
	if !res.Sent {
		fmt.Fprintf(stdout, "%s: the relay already holds this content for %s as %s (sha256 %s); nothing sent\n", path, *to, *id, res.Hash)
		return 0
	}
	fmt.Fprintf(stdout, "%s: sent to %s as %s (%d bytes, sha256 %s, ttl %s)\n", path, *to, *id, res.Size, res.Hash, *ttlText)
	return 0
}

// Exit codes of `has`.
const (
	hasPresent = 0
	hasAbsent  = 1
	hasError   = 2
)

func cmdHas(args []string, stdout, stderr io.Writer) int {
	c := newFileCmd("has")
	to := c.fs.String("to", "", "target node id (required)")
	id := c.fs.String("id", "", "file id (required)")
	if code := c.parseArgs(args, stderr, "--to", to, id, "PATH"); code != 0 {
		return hasError
	}
	path := c.fs.Arg(0)
	sum, _, err := sharedfile.HashFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "keel-agent has: %v\n", err)
		return hasError
	}
	ctx, cl, done, err := c.client(stderr)
	if err != nil {
		return hasError
	}
	defer done()
	present, err := cl.Has(ctx, *to, cl.NodeID(), *id, sum)
	if err != nil {
		fmt.Fprintf(stderr, "keel-agent has: %s for %s as %s: %v\n", path, *to, *id, err)
		return hasError
	}
	if present {
		fmt.Fprintf(stdout, "present: the relay holds %s's content (sha256 %s) for %s as %s\n", path, sum, *to, *id)
		return hasPresent
	}
	fmt.Fprintf(stdout, "absent: the relay holds no file %s for %s with %s's content (sha256 %s)\n", *id, *to, path, sum)
	return hasAbsent
}

func cmdFetch(args []string, stdout, stderr io.Writer) int {
	c := newFileCmd("fetch")
	from := c.fs.String("from", "", "source node id (required)")
	id := c.fs.String("id", "", "file id (required)")
	hash := c.fs.String("hash", "", "expected sha256 of the content, hex (optional)")
	modeText := c.fs.String("mode", "0600", "permissions of the written file, octal")
	if code := c.parseArgs(args, stderr, "--from", from, id, "DEST"); code != 0 {
		return code
	}
	mode, err := sharedfile.ParseMode(*modeText)
	if err != nil {
		return c.usageErr(stderr, "--mode: %v", err)
	}
	dest := c.fs.Arg(0)
	if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
		return c.usageErr(stderr, "DEST %s is a directory; give the file's path", dest)
	}
	ctx, cl, done, err := c.client(stderr)
	if err != nil {
		return 1
	}
	defer done()
	res, err := cl.Fetch(ctx, *from, *id, dest, sharedfile.FetchOptions{Hash: *hash, Mode: mode})
	if err != nil {
		fmt.Fprintf(stderr, "keel-agent fetch: %s from %s into %s: %v\n", *id, *from, dest, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: fetched %s from %s (%d bytes, %s %s)\n", dest, *id, *from, res.Size, res.Algorithm, res.Hash)
	return 0
}

// parseArgs parses args into the command's flags and checks what share, has and fetch
// all need: the node flag (nodeFlag, "--to" or "--from", whose value is node) and --id
// (id) set to a valid node id and file id, and exactly one positional argument (what,
// such as "PATH"). It returns 0 when they are good, else the usage error's exit code, 2,
// after saying why on stderr.
func (c *fileCmd) parseArgs(args []string, stderr io.Writer, nodeFlag string, node, id *string, what string) int {
	if !cli.Parse(c.fs, args, stderr) {
		return 2
	}
	switch {
	case *node == "":
		return c.usageErr(stderr, "%s is required", nodeFlag)
	case *id == "":
		return c.usageErr(stderr, "--id is required")
	case c.fs.NArg() == 0:
		return c.usageErr(stderr, "%s is required", what)
	case c.fs.NArg() > 1:
		return c.usageErr(stderr, "one %s expected, got %d arguments", what, c.fs.NArg())
	}
	if err := ids.ValidNodeID(*node); err != nil {
		return c.usageErr(stderr, "%s: %v", nodeFlag, err)
	}
	if err := ids.ValidFileID(*id); err != nil {
		return c.usageErr(stderr, "--id: %v", err)
	}
	return 0
}
