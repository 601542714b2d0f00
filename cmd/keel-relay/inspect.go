package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/keel-relay/keel/internal/cli"
	"github.com/keel-relay/keel/internal/wire/ids"
	"github.com/keel-relay/keel/relay/admintoken"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/inspect"
	"github.com/keel-relay/keel/relay/nodemap"
	"github.com/keel-relay/keel/storage"
)

// inspector answers the inspection commands from a stopped relay's store (store set) or
// through a running relay's admin listener (admin set).
type inspector struct {
	cfg   *config.Config
	store *storage.Store
	admin *adminClient
}

// close releases the store of an offline inspector. Run as root, it gives what the store
// wrote meanwhile (a flush on close) to the data directory's owner, as restore does: the
// relay's user must still be able to open it.
func (in *inspector) close() error {
	if in.store == nil {
		return nil
	}
	err := in.store.Close()
	if oerr := fixOwnership(in.cfg.DataDir, io.Discard); err == nil {
		err = oerr
	}
	return err
}

// inspectFlags registers --config and --admin on fs; the returned function opens the
// inspector once fs is parsed: offline on data_dir when no relay holds it, else online.
func inspectFlags(fs *flag.FlagSet, stderr io.Writer) func() (*inspector, error) {
	load := configFlags(fs)
	addr := fs.String("admin", "", "ask the admin listener HOST:PORT (default: read data_dir, or admin.listen while the relay runs)")
	return func() (*inspector, error) {
		cfg, _, explicit, err := load()
		if *addr != "" {
			// As for the edge commands: the config is read for its token, if it can be.
			if err != nil && explicit {
				return nil, err
			}
			var tok admintoken.Token
			if err == nil {
				if tok, err = adminToken(cfg); err != nil && explicit {
					return nil, err
				}
			}
			return &inspector{cfg: cfg, admin: newAdminClient(*addr, tok)}, nil
		}
		if err != nil {
			return nil, err
		}
		// Opening would create an empty store: a wrong data_dir must say so.
		if _, err := os.Stat(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("no store to inspect: %w", err)
		}
		store, err := openStore(cfg)
		if err == nil {
			return &inspector{cfg: cfg, store: store}, nil
		}
		if !errors.Is(err, storage.ErrLocked) {
			return nil, err
		}
		if cfg.Admin.Listen == "" {
			return nil, errors.New("the relay is running (its store is locked) and admin.listen is disabled: nothing can be inspected while it runs")
		}
		tok, err := adminToken(cfg)
		if err != nil {
			return nil, fmt.Errorf("the relay is running: its admin API wants the token: %w", err)
		}
		fmt.Fprintf(stderr, "the relay is running: asking its admin API at %s\n", cfg.Admin.Listen)
		return &inspector{cfg: cfg, admin: newAdminClient(cfg.Admin.Listen, tok)}, nil
	}
}

// inspectSetup parses args (flags, then exactly nargs positional arguments; -1: at most
// one), checks them (extra registers the command's own flags, and may return their check)
// and opens the inspector. code is the exit code when in is nil.
func inspectSetup(name string, args []string, nargs int, stderr io.Writer, extra func(*flag.FlagSet) func() bool) (in *inspector, rest []string, code int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	open := inspectFlags(fs, stderr)
	var check func() bool
	if extra != nil {
		check = extra(fs)
	}
	if !cli.Parse(fs, args, stderr) {
		return nil, nil, 2
	}
	if check != nil && !check() {
		return nil, nil, 2
	}
	if (nargs >= 0 && fs.NArg() != nargs) || (nargs < 0 && fs.NArg() > 1) {
		fmt.Fprintf(stderr, "keel-relay %s: wrong number of arguments (%d)\n", name, fs.NArg())
		return nil, nil, 2
	}
	in, err := open()
	if err != nil {
		return nil, nil, fail(stderr, err)
	}
	return in, fs.Args(), 0
}

// limitFlag registers --limit, and returns its check: a limit out of range is a usage
// error.
func limitFlag(fs *flag.FlagSet, name string, stderr io.Writer, limit **int) func() bool {
	*limit = fs.Int("limit", inspect.DefaultLimit, fmt.Sprintf("list at most N entries (1 to %d)", inspect.MaxLimit))
	return func() bool {
		if **limit < 1 || **limit > inspect.MaxLimit {
			fmt.Fprintf(stderr, "keel-relay %s: --limit must be from 1 to %d\n", name, inspect.MaxLimit)
			return false
		}
		return true
	}
}

func filesLs(args []string, stdout, stderr io.Writer) int {
	var limit *int
	var asJSON *bool
	in, rest, code := inspectSetup("files ls", args, -1, stderr, func(fs *flag.FlagSet) func() bool {
		asJSON = fs.Bool("json", false, "print the JSON listing")
		return limitFlag(fs, "files ls", stderr, &limit)
	})
	if in == nil {
		return code
	}
	defer in.close()
	target := ""
	if len(rest) == 1 {
		target = rest[0]
		if err := ids.ValidNodeID(target); err != nil {
			fmt.Fprintf(stderr, "keel-relay files ls: target: %v\n", err)
			return 2
		}
	}
	var out inspect.Files
	var err error
	if in.store != nil {
		out, err = inspect.ListFiles(in.store, target, *limit)
	} else {
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if target != "" {
			q.Set("target", target)
		}
		err = in.admin.call(http.MethodGet, "/files?"+q.Encode(), nil, &out)
	}
	if err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		printJSON(stdout, out)
		return 0
	}
	writeFilesTable(stdout, out, time.Now())
	return 0
}

// writeFilesTable prints kept files as an aligned table, times relative to now.
func writeFilesTable(w io.Writer, f inspect.Files, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tSOURCE\tFILE ID\tSIZE\tSTORED\tEXPIRES\tHASH")
	for _, x := range f.Files {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s ago\tin %s\t%s:%s\n", x.Target, x.Source, x.ID, x.Size, ago(now.Sub(x.Stored)),
			ago(x.Expires.Sub(now)), x.Algorithm, short(x.Hash, 16))
	}
	_ = tw.Flush()
	scope := "kept"
	if f.Target != "" {
		scope = "kept for " + f.Target
	}
	fmt.Fprintf(w, "%d of %d file(s) %s\n", len(f.Files), f.Total, scope)
}

// short cuts s to n characters, marking the cut.
func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func queueLs(args []string, stdout, stderr io.Writer) int {
	var limit *int
	var asJSON *bool
	in, _, code := inspectSetup("queue ls", args, 0, stderr, func(fs *flag.FlagSet) func() bool {
		asJSON = fs.Bool("json", false, "print the JSON listing")
		return limitFlag(fs, "queue ls", stderr, &limit)
	})
	if in == nil {
		return code
	}
	defer in.close()
	q, err := in.queue(*limit)
	if err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		printJSON(stdout, q)
		return 0
	}
	writeQueueTable(stdout, q, time.Now())
	return 0
}

// queue reads the forward queue: its summary and at most limit jobs (0: none).
func (in *inspector) queue(limit int) (inspect.Queue, error) {
	if in.store != nil {
		return inspect.ListQueue(in.store, limit)
	}
	var q inspect.Queue
	err := in.admin.call(http.MethodGet, "/queue?limit="+strconv.Itoa(limit), nil, &q)
	return q, err
}

// writeQueueTable prints the queue as an aligned table, times relative to now.
func writeQueueTable(w io.Writer, q inspect.Queue, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFILE\tNEXT HOP\tSIZE\tQUEUED\tATTEMPTS\tNEXT ATTEMPT\tLAST ERROR")
	for _, j := range q.Jobs {
		next := "now"
		if j.Due.After(now) {
			next = "in " + ago(j.Due.Sub(now))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s ago\t%d\t%s\t%s\n", j.ID, j.File, j.NextHop, j.Size, ago(now.Sub(j.Queued)),
			j.Attempts, next, dash(short(oneLine(j.LastError), 80)))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d of %d queued forward(s), %d bytes", len(q.Jobs), q.Total, q.Bytes)
	if q.OldestQueued != nil {
		fmt.Fprintf(w, "; oldest queued %s ago", ago(now.Sub(*q.OldestQueued)))
	}
	fmt.Fprintln(w)
}

func queueRetry(args []string, stdout, stderr io.Writer) int {
	return queueAct("retry", args, stdout, stderr)
}
func queueDrop(args []string, stdout, stderr io.Writer) int {
	return queueAct("drop", args, stdout, stderr)
}

// queueAct retries or drops one queued forward.
func queueAct(what string, args []string, stdout, stderr io.Writer) int {
	in, rest, code := inspectSetup("queue "+what, args, 1, stderr, nil)
	if in == nil {
		return code
	}
	defer in.close()
	id := rest[0]
	var job inspect.Job
	if in.store != nil {
		var sj storage.Job
		var err error
		if what == "retry" {
			sj, err = in.store.RetryJob(id, time.Now())
		} else {
			sj, err = in.store.DropJob(id)
		}
		if errors.Is(err, storage.ErrBadJobID) {
			fmt.Fprintf(stderr, "keel-relay queue %s: %v\n", what, err)
			return 2
		}
		if err != nil {
			return fail(stderr, err)
		}
		job = inspect.JobOf(sj)
	} else if err := in.admin.call(http.MethodPost, "/queue/"+url.PathEscape(id)+"/"+what, nil, &job); err != nil {
		return fail(stderr, err)
	}
	switch what {
	case "retry":
		note := ""
		if in.store != nil {
			note = " (the relay is stopped: it tries it when it starts)"
		}
		fmt.Fprintf(stdout, "job %s (%s to %s) is due now%s\n", job.ID, job.File, job.NextHop, note)
	default:
		fmt.Fprintf(stdout, "job %s (%s to %s, %d bytes, %d attempt(s)) dropped\n", job.ID, job.File, job.NextHop, job.Size, job.Attempts)
	}
	return 0
}

// nodeMap returns the node map a stopped relay would route with: its nodes file, else the
// copy kept in its store (unless marked superseded); and where it came from.
func (in *inspector) nodeMap() (*nodemap.Map, string, error) {
	cfg := in.cfg
	if cfg.NodesFile == "" {
		return nodemap.Empty(cfg.NodeID), "no nodes_file", nil
	}
	data, ferr := os.ReadFile(cfg.NodesFile)
	if ferr == nil {
		m, err := nodemap.Parse(data, cfg.NodeID)
		if err == nil {
			return m, cfg.NodesFile, nil
		}
		ferr = err
	}
	rec, content, err := in.store.OpenNodeMap()
	if err != nil {
		return nil, "", fmt.Errorf("node map %s: %w (and none kept in the store: %v)", cfg.NodesFile, ferr, err)
	}
	defer content.Close()
	if rec.SupersededBy != "" {
		return nil, "", fmt.Errorf("node map %s: %w (the copy kept in the store is superseded: the relay would route no node)", cfg.NodesFile, ferr)
	}
	m, err := nodemap.ParseReader(content, cfg.NodeID)
	if err != nil {
		return nil, "", fmt.Errorf("node map kept in the store: %w", err)
	}
	return m, fmt.Sprintf("kept in the store (loaded from %s at %s; %s: %v)", rec.Source, rec.LoadedAt.UTC().Format(time.RFC3339), cfg.NodesFile, ferr), nil
}

func nodesLs(args []string, stdout, stderr io.Writer) int {
	var limit *int
	var asJSON *bool
	in, _, code := inspectSetup("nodes ls", args, 0, stderr, func(fs *flag.FlagSet) func() bool {
		asJSON = fs.Bool("json", false, "print the JSON listing")
		return limitFlag(fs, "nodes ls", stderr, &limit)
	})
	if in == nil {
		return code
	}
	defer in.close()
	var out inspect.Nodes
	if in.store != nil {
		m, source, err := in.nodeMap()
		if err != nil {
			return fail(stderr, err)
		}
		out = inspect.ListNodes(m, source, *limit)
	} else if err := in.admin.call(http.MethodGet, "/nodes?limit="+strconv.Itoa(*limit), nil, &out); err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		printJSON(stdout, out)
		return 0
	}
	writeNodesTable(stdout, out)
	return 0
}

// writeNodesTable prints node map entries as an aligned table.
func writeNodesTable(w io.Writer, n inspect.Nodes) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE ID\tHOSTNAME\tPOLICY SERVER\tROUTE\tKEY HASH")
	for _, x := range n.Nodes {
		route := x.Route
		if x.Via != "" {
			route += " via " + x.Via
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", x.ID, dash(x.Hostname), dash(x.PolicyServer), route, dash(x.KeyHash))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d of %d node(s) in the map of %s: %d attached here, %d below it in all\n", len(n.Nodes), n.Total, n.Self, n.Mine, n.Below)
	if n.Source != "" {
		fmt.Fprintf(w, "map: %s", n.Source)
		if n.Digest != "" {
			fmt.Fprintf(w, " (sha256 %s)", short(n.Digest, 16))
		}
		fmt.Fprintln(w)
	}
}

func nodesRoute(args []string, stdout, stderr io.Writer) int {
	var asJSON *bool
	in, rest, code := inspectSetup("nodes route", args, 1, stderr, func(fs *flag.FlagSet) func() bool {
		asJSON = fs.Bool("json", false, "print the JSON answer")
		return nil
	})
	if in == nil {
		return code
	}
	defer in.close()
	id := rest[0]
	if err := ids.ValidNodeID(id); err != nil {
		fmt.Fprintf(stderr, "keel-relay nodes route: %v\n", err)
		return 2
	}
	var r inspect.Route
	if in.store != nil {
		m, _, err := in.nodeMap()
		if err != nil {
			return fail(stderr, err)
		}
		r = inspect.Explain(m, in.cfg.Role == config.RoleRoot, in.cfg.Upstream, id)
	} else if err := in.admin.call(http.MethodGet, "/nodes/"+url.PathEscape(id)+"/route", nil, &r); err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		printJSON(stdout, r)
		return 0
	}
	writeRoute(stdout, r)
	return 0
}

// writeRoute prints a route explanation.
func writeRoute(w io.Writer, r inspect.Route) {
	dest := r.Destination
	if r.Via != "" {
		dest += " " + r.Via
	}
	fmt.Fprintf(w, "node %s: %s\n  why: %s\n", r.Node, dest, r.Why)
	if r.InMap {
		fmt.Fprintf(w, "  policy server: %s", r.Parent)
		if len(r.Chain) > 1 {
			fmt.Fprintf(w, " (chain: %s)", joinArrow(r.Chain))
		}
		fmt.Fprintln(w)
	}
	verdict := "refused"
	if r.SourceAccepted {
		verdict = "accepted"
	}
	fmt.Fprintf(w, "  as a source: %s: %s\n", verdict, r.SourceWhy)
	if r.KeyHash != "" {
		fmt.Fprintf(w, "  key-hash: %s\n", r.KeyHash)
	}
}

func joinArrow(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " → "
		}
		out += x
	}
	return out
}
