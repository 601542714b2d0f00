package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keel-relay/keel/internal/cli"
	"github.com/keel-relay/keel/relay/delivery"
)

// uploadsUsage documents `keel-relay uploads`.
const uploadsUsage = `usage: keel-relay uploads [--failed] [--kind KIND] [--limit N] [--json] [--config FILE | --admin HOST:PORT]

Lists the agents' uploads (inventories, inventory updates, reports) this relay keeps for its
upstream, oldest first: those waiting for delivery, or with --failed those kept aside (a
report of a node not in the node map, an upload the relay could not read). It asks the
running relay's admin listener (admin.listen, with the token of admin.token_file).
`

// cmdUploads lists the kept agents' uploads through the admin listener.
func cmdUploads(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("uploads", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(stderr, uploadsUsage); fs.PrintDefaults() }
	client := edgeFlags(fs)
	failed := fs.Bool("failed", false, "list the uploads kept aside as failed instead of those waiting")
	kind := fs.String("kind", "", "only this kind: inventories, inventory-updates or reports")
	limit := fs.Int("limit", delivery.DefaultListLimit, fmt.Sprintf("list at most N uploads (1 to %d)", delivery.MaxListLimit))
	asJSON := fs.Bool("json", false, "print the JSON list")
	if !cli.NoArgs(fs, args, stderr, "keel-relay uploads") {
		return 2
	}
	if *limit < 1 || *limit > delivery.MaxListLimit {
		fmt.Fprintf(stderr, "keel-relay uploads: --limit must be from 1 to %d\n", delivery.MaxListLimit)
		return 2
	}
	c, err := client()
	if err != nil {
		return fail(stderr, err)
	}
	q := url.Values{"state": {"waiting"}, "limit": {strconv.Itoa(*limit)}}
	state := "waiting"
	if *failed {
		state = "failed"
		q.Set("state", state)
	}
	if *kind != "" {
		q.Set("kind", *kind)
	}
	var list []delivery.Listed
	total, err := c.list("/uploads?"+q.Encode(), &list)
	if err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		printJSON(stdout, list)
		return 0
	}
	writeUploadsTable(stdout, list, state, total, time.Now())
	return 0
}

// list GETs a JSON listing into out and returns its X-Total-Count header ("?" when absent).
func (c *adminClient) list(path string, out any) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(out); err != nil {
		return "", fmt.Errorf("GET %s: decode answer: %w", path, err)
	}
	total := resp.Header.Get("X-Total-Count")
	if total == "" {
		total = "?"
	}
	return total, nil
}

// writeUploadsTable prints kept uploads as an aligned table, their age relative to now.
func writeUploadsTable(w io.Writer, list []delivery.Listed, state, total string, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	last := "NEXT ATTEMPT\tLAST ERROR"
	if state == "failed" {
		last = "REASON\tLAST ERROR"
	}
	fmt.Fprintln(tw, "KIND\tNAME\tSIZE\tAGE\tATTEMPTS\t"+last)
	for _, l := range list {
		col := "-"
		switch {
		case l.Failed:
			col = dash(l.FailReason)
		case l.Due != nil && l.Due.After(now):
			col = "in " + ago(l.Due.Sub(now))
		case l.Due != nil:
			col = "now"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", l.Kind, l.Name, l.Size, ago(now.Sub(l.Received)), l.Attempts,
			col, dash(oneLine(l.LastError)))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d of %s %s upload(s)\n", len(list), total, state)
}

// oneLine keeps a table row on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
