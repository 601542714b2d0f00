package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/keel-relay/keel/edge/admin"
	"github.com/keel-relay/keel/internal/cli"
	"github.com/keel-relay/keel/internal/wire/runoutput"
	"github.com/keel-relay/keel/relay/admintoken"
	"github.com/keel-relay/keel/relay/config"
)

// edgeAdminCommands are the operator subcommands of `keel-relay edge`, which talk to the
// running relay's admin listener (--config FILE or --admin HOST:PORT).
func edgeAdminCommands() []*cli.Command {
	return []*cli.Command{
		{Name: "ls", Args: "[--json]", Summary: "list edge daemons (status, last seen, capabilities, tags)", Run: edgeLs},
		{Name: "show", Args: "ID", Summary: "one daemon, as JSON", Run: edgeShow},
		{Name: "tag", Args: "ID [k=v ...]", Summary: "replace the daemon's server-managed tags (none: clear them)", Run: edgeTag},
		{Name: "revoke", Args: "ID", Summary: "revoke: evict its stream, blacklist its token", Run: edgeRevoke},
		{Name: "invoke", Args: "(--node ID | --tags k=v,... [--labels k=v,...]) [--parallel N] [--timeout 5m] [--json] TOOL [k=v ...]",
			Summary: `run TOOL with string args on the daemons; live "<node>: ..." output`, Run: edgeInvoke,
			Exit: []cli.ExitCode{{Code: 0, Meaning: "every node ran TOOL and it succeeded"}, {Code: 1, Meaning: "a node failed, or the command did"}, cli.ExitCodes[2]}},
		{Name: "cancel", Args: "FLEET_ID", Summary: "cancel a running fleet command", Run: edgeCancel},
		{Name: "fleets", Summary: "list running fleet commands", Run: edgeFleets},
		{Name: "drain", Args: "[ID]", Summary: "send Drain to one daemon, or to every connected one", Run: edgeDrain},
		{Name: "push-config", Args: "ID VERSION JSON", Summary: "send a config delta (a JSON value) with its version", Run: edgePushConfig},
	}
}

// adminClient talks to the relay's admin listener.
type adminClient struct {
	base   string
	client *http.Client
	token  admintoken.Token // sent with every request (zero: none)
}

// edgeFlags registers --config and --admin on fs; the returned function resolves the admin
// listener once fs is parsed.
func edgeFlags(fs *flag.FlagSet) func() (*adminClient, error) {
	load := configFlags(fs)
	addr := fs.String("admin", "", "admin listener `HOST:PORT` (default: admin.listen of the config)")
	return func() (*adminClient, error) {
		// With --admin and no --config, the default config is read if it can be, for its
		// token: a best effort, since the relay answers 401 itself if it wants one.
		cfg, _, explicit, err := load()
		strict := *addr == "" || explicit
		if err != nil && strict {
			return nil, err
		}
		a := *addr
		if a == "" {
			if cfg.Admin.Listen == "" {
				return nil, errors.New("admin.listen is disabled in the config: the admin commands need the admin listener (or --admin)")
			}
			a = cfg.Admin.Listen
		}
		var tok admintoken.Token
		if err == nil {
			if tok, err = adminToken(cfg); err != nil && strict {
				return nil, err
			}
		}
		return newAdminClient(a, tok), nil
	}
}

// newAdminClient returns a client of the admin listener at addr (HOST:PORT) sending tok.
func newAdminClient(addr string, tok admintoken.Token) *adminClient {
	return &adminClient{base: "http://" + addr, client: &http.Client{Transport: &http.Transport{Proxy: nil}}, token: tok}
}

// adminToken reads the admin token of cfg (admin.token_file), or returns none.
func adminToken(cfg *config.Config) (admintoken.Token, error) {
	if cfg.Admin.TokenFile == "" {
		return admintoken.Token{}, nil
	}
	tok, err := admintoken.Load(cfg.Admin.TokenFile)
	if errors.Is(err, fs.ErrNotExist) {
		return tok, fmt.Errorf("%w (the relay creates it on its first start)", err)
	}
	return tok, err
}

// do sends a request and returns the response when its status is 2xx; otherwise an error
// with the relay's message.
func (c *adminClient) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.token.Set(req)
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

// call sends a short request and decodes its JSON answer into out (nil: discarded).
func (c *adminClient) call(method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// edgeSetup parses flags (and exactly nargs positional arguments, -1 = any) and returns
// the admin client.
func edgeSetup(name string, args []string, nargs int, stderr io.Writer, extra func(*flag.FlagSet)) (*adminClient, []string, int) {
	fs := flag.NewFlagSet("edge "+name, flag.ContinueOnError)
	client := edgeFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if !cli.Parse(fs, args, stderr) {
		return nil, nil, 2
	}
	if nargs >= 0 && fs.NArg() != nargs {
		fmt.Fprintf(stderr, "keel-relay edge %s: want %d argument(s), got %d\n", name, nargs, fs.NArg())
		return nil, nil, 2
	}
	c, err := client()
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: %v\n", err)
		return nil, nil, 1
	}
	return c, fs.Args(), 0
}

// checkID validates a daemon id argument (a usage error when bad).
func checkID(id string, stderr io.Writer) bool {
	if err := admin.ValidNodeID(id); err != nil {
		fmt.Fprintf(stderr, "keel-relay: %v\n", err)
		return false
	}
	return true
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "keel-relay: %v\n", err)
	return 1
}

func edgeLs(args []string, stdout, stderr io.Writer) int {
	var asJSON *bool
	c, _, code := edgeSetup("ls", args, 0, stderr, func(fs *flag.FlagSet) {
		asJSON = fs.Bool("json", false, "print the JSON list")
	})
	if c == nil {
		return code
	}
	var ds []admin.Daemon
	if err := c.call(http.MethodGet, "/edge/daemons", nil, &ds); err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(ds)
		return 0
	}
	writeDaemonTable(stdout, ds, time.Now())
	return 0
}

// writeDaemonTable prints daemons as an aligned table, last seen relative to now.
func writeDaemonTable(w io.Writer, ds []admin.Daemon, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE ID\tTENANT\tLABEL\tSTATUS\tLAST SEEN\tOS/ARCH\tTOOLS\tLABELS\tTAGS")
	for _, d := range ds {
		seen := "never"
		if d.LastSeen != nil {
			seen = ago(now.Sub(*d.LastSeen)) + " ago"
		}
		platform := d.Capabilities.OS + "/" + d.Capabilities.Arch
		if platform == "/" {
			platform = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.NodeID, dash(d.Tenant), dash(d.Label), d.Status, seen, platform,
			dash(strings.Join(d.Capabilities.Tools, ",")), dash(pairs(d.Capabilities.Labels)), dash(pairs(d.Tags)))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d daemon(s)\n", len(ds))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// pairs renders a map as sorted k=v,k=v.
func pairs(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}

// ago renders a duration coarsely: 45s, 12m, 3h, 2d.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func printJSON(stdout io.Writer, v any) {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func edgeShow(args []string, stdout, stderr io.Writer) int {
	c, rest, code := edgeSetup("show", args, 1, stderr, nil)
	if c == nil {
		return code
	}
	if !checkID(rest[0], stderr) {
		return 2
	}
	var d admin.Daemon
	if err := c.call(http.MethodGet, "/edge/daemons/"+rest[0], nil, &d); err != nil {
		return fail(stderr, err)
	}
	printJSON(stdout, d)
	return 0
}

func edgeTag(args []string, stdout, stderr io.Writer) int {
	c, rest, code := edgeSetup("tag", args, -1, stderr, nil)
	if c == nil {
		return code
	}
	if len(rest) < 1 {
		fmt.Fprint(stderr, "usage: keel-relay edge tag [--config FILE | --admin HOST:PORT] ID [k=v ...]\n")
		return 2
	}
	if !checkID(rest[0], stderr) {
		return 2
	}
	tags, err := admin.ParsePairs(rest[1:], false)
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: %v\n", err)
		return 2
	}
	var d admin.Daemon
	if err := c.call(http.MethodPut, "/edge/daemons/"+rest[0]+"/tags", admin.TagsRequest{Tags: tags}, &d); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s tags: %s\n", d.NodeID, dash(pairs(d.Tags)))
	return 0
}

func edgeRevoke(args []string, stdout, stderr io.Writer) int {
	c, rest, code := edgeSetup("revoke", args, 1, stderr, nil)
	if c == nil {
		return code
	}
	if !checkID(rest[0], stderr) {
		return 2
	}
	if err := c.call(http.MethodPost, "/edge/daemons/"+rest[0]+"/revoke", nil, nil); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s revoked\n", rest[0])
	return 0
}

func edgeCancel(args []string, stdout, stderr io.Writer) int {
	c, rest, code := edgeSetup("cancel", args, 1, stderr, nil)
	if c == nil {
		return code
	}
	if err := admin.ValidFleetID(rest[0]); err != nil {
		fmt.Fprintf(stderr, "keel-relay: %v\n", err)
		return 2
	}
	if err := c.call(http.MethodPost, "/edge/fleet/"+rest[0]+"/cancel", nil, nil); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "fleet command %s cancelled\n", rest[0])
	return 0
}

func edgeFleets(args []string, stdout, stderr io.Writer) int {
	c, _, code := edgeSetup("fleets", args, 0, stderr, nil)
	if c == nil {
		return code
	}
	var fs []admin.FleetInfo
	if err := c.call(http.MethodGet, "/edge/fleet", nil, &fs); err != nil {
		return fail(stderr, err)
	}
	for _, f := range fs {
		fmt.Fprintf(stdout, "%s  %d node(s)  started %s\n", f.ID, f.Nodes, f.Started.UTC().Format(time.RFC3339))
	}
	return 0
}

func edgeDrain(args []string, stdout, stderr io.Writer) int {
	c, rest, code := edgeSetup("drain", args, -1, stderr, nil)
	if c == nil {
		return code
	}
	path := "/edge/drain"
	switch len(rest) {
	case 0:
	case 1:
		if !checkID(rest[0], stderr) {
			return 2
		}
		path = "/edge/daemons/" + rest[0] + "/drain"
	default:
		fmt.Fprint(stderr, "usage: keel-relay edge drain [--config FILE | --admin HOST:PORT] [ID]\n")
		return 2
	}
	var out struct {
		Drained int `json:"drained"`
	}
	if err := c.call(http.MethodPost, path, nil, &out); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "drain sent to %d daemon(s)\n", out.Drained)
	return 0
}

func edgePushConfig(args []string, stdout, stderr io.Writer) int {
	c, rest, code := edgeSetup("push-config", args, 3, stderr, nil)
	if c == nil {
		return code
	}
	if !checkID(rest[0], stderr) {
		return 2
	}
	if !json.Valid([]byte(rest[2])) {
		fmt.Fprintf(stderr, "keel-relay: the config delta %.60q is not JSON\n", rest[2])
		return 2
	}
	req := admin.ConfigRequest{Delta: json.RawMessage(rest[2]), Version: rest[1]}
	if err := c.call(http.MethodPost, "/edge/daemons/"+rest[0]+"/config", req, nil); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "config %s sent to %s\n", rest[1], rest[0])
	return 0
}

func edgeInvoke(args []string, stdout, stderr io.Writer) int {
	var node, tags, labels, timeout *string
	var parallel *int
	var raw, showProgress *bool
	c, rest, code := edgeSetup("invoke", args, -1, stderr, func(fs *flag.FlagSet) {
		node = fs.String("node", "", "run on this daemon")
		tags = fs.String("tags", "", "run on every daemon with these tags: k=v,k=v")
		labels = fs.String("labels", "", "… and these capability labels: k=v,k=v")
		parallel = fs.Int("parallel", admin.DefaultParallel, "nodes at once")
		timeout = fs.String("timeout", admin.DefaultTimeout.String(), "deadline of each node's run")
		raw = fs.Bool("json", false, "print the relay's result lines as JSON")
		showProgress = fs.Bool("progress", false, "print done/total on stderr after each node's result (the default on a terminal)")
	})
	if c == nil {
		return code
	}
	if len(rest) < 1 {
		fmt.Fprint(stderr, "usage: keel-relay edge invoke (--node ID | --tags k=v,...) [--parallel N] [--timeout 5m] TOOL [k=v ...]\n")
		return 2
	}
	req := admin.InvokeRequest{Node: *node, Tool: rest[0], Timeout: *timeout, Parallel: *parallel}
	var err error
	if *tags != "" {
		if req.Tags, err = admin.ParsePairs([]string{*tags}, true); err != nil {
			fmt.Fprintf(stderr, "keel-relay: --tags: %v\n", err)
			return 2
		}
	}
	if *labels != "" {
		if req.Labels, err = admin.ParsePairs([]string{*labels}, true); err != nil {
			fmt.Fprintf(stderr, "keel-relay: --labels: %v\n", err)
			return 2
		}
	}
	toolArgs, err := admin.ParsePairs(rest[1:], false)
	if err != nil {
		fmt.Fprintf(stderr, "keel-relay: tool arguments: %v\n", err)
		return 2
	}
	if len(toolArgs) > 0 {
		req.Args = map[string]any{}
		for k, v := range toolArgs {
			req.Args[k] = v
		}
	}
	if _, err := req.Check(); err != nil {
		fmt.Fprintf(stderr, "keel-relay: %v\n", err)
		return 2
	}
	// Ctrl-C ends the request: the relay cancels the fleet command of a client that left.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	resp, err := c.do(ctx, http.MethodPost, "/edge/invoke", req)
	if err != nil {
		return fail(stderr, err)
	}
	defer resp.Body.Close()
	fmt.Fprintf(stderr, "fleet command %s on %s node(s) (keel-relay edge cancel %s)\n",
		resp.Header.Get(admin.FleetHeader), resp.Header.Get("Keel-Fleet-Nodes"), resp.Header.Get(admin.FleetHeader))
	var progress func(nodes, failed int) // nil: none
	if total := resp.Header.Get("Keel-Fleet-Nodes"); *showProgress || isTerminal(stderr) {
		progress = func(nodes, failed int) {
			fmt.Fprintf(stderr, "progress: %d/%s node(s) done, %d failed\n", nodes, total, failed)
		}
	}
	nodes, failed, err := copyInvokeOutput(resp.Body, stdout, stderr, *raw, progress)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "keel-relay: interrupted: the relay cancels the fleet command")
			return 1
		}
		return fail(stderr, err)
	}
	fmt.Fprintf(stderr, "%d node(s), %d failed\n", nodes, failed)
	if failed > 0 || nodes == 0 {
		return 1
	}
	return 0
}

// copyInvokeOutput copies an invoke's output lines to stdout and turns its JSON result lines
// into one summary line per node (or copies them, with raw). It counts the nodes that ended
// and those that failed, and calls progress (when not nil) after each result.
func copyInvokeOutput(body io.Reader, stdout, stderr io.Writer, raw bool, progress func(nodes, failed int)) (nodes, failed int, err error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), runoutput.MaxStreamLine)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			fmt.Fprintf(stdout, "%s\n", line)
			continue
		}
		var res admin.Result
		if err := json.Unmarshal(line, &res); err != nil {
			return nodes, failed, fmt.Errorf("result line %.100q: %w", line, err)
		}
		nodes++
		if res.Failed() {
			failed++
		}
		printResult(res, line, stdout, stderr, raw)
		if progress != nil {
			progress(nodes, failed)
		}
	}
	return nodes, failed, sc.Err()
}

// printResult prints one node's result: its line as it came (raw), else a summary line on
// stdout and its stderr on stderr.
func printResult(res admin.Result, line []byte, stdout, stderr io.Writer, raw bool) {
	switch {
	case raw:
		fmt.Fprintf(stdout, "%s\n", line)
	case res.Failed():
		msg := fmt.Sprintf("exit %d", res.ExitCode)
		if res.Error != "" {
			msg += ", " + res.Error
		}
		fmt.Fprintf(stdout, "%s: [FAILED %s after %dms]\n", res.Node, msg, res.DurationMS)
		for _, l := range strings.Split(strings.TrimRight(res.Stderr, "\n"), "\n") {
			if l != "" {
				fmt.Fprintf(stderr, "%s: stderr: %s\n", res.Node, l)
			}
		}
	default:
		fmt.Fprintf(stdout, "%s: [exit 0 after %dms]\n", res.Node, res.DurationMS)
	}
}
