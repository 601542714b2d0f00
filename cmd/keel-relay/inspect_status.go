package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keel-relay/keel/internal/membudget"
	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/inspect"
)

// statusReport is `keel-relay status`: what an operator checks first, on one screen.
type statusReport struct {
	// Source is where it was read: the admin listener of the running relay, or data_dir.
	Source  string `json:"source"`
	Running bool   `json:"running"`
	// Health is ok, draining or disk_full (running), or stopped.
	Health    string                      `json:"health"`
	Reason    string                      `json:"reason,omitempty"`
	NodeID    string                      `json:"node_id"`
	Role      string                      `json:"role"`
	Version   string                      `json:"version,omitempty"`
	UptimeSec int64                       `json:"uptime_seconds,omitempty"`
	Memory    *httpapi.MemoryStatus       `json:"memory,omitempty"`
	Store     storeReport                 `json:"store"`
	Queue     inspect.Queue               `json:"queue"`
	Uploads   *httpapi.AgentUploadsStatus `json:"agent_uploads,omitempty"`
	NodeMap   httpapi.NodeMapStatus       `json:"node_map"`
	Upstream  *upstreamCheck              `json:"upstream,omitempty"`
	Edge      *int                        `json:"edge_daemons_connected,omitempty"`
}

// storeReport is the store part of the status.
type storeReport struct {
	Files int64               `json:"files"`
	Bytes int64               `json:"bytes"`
	Disk  *httpapi.DiskStatus `json:"disk,omitempty"`
}

// upstreamCheck is whether the upstream's address takes a TCP connection.
type upstreamCheck struct {
	URL       string `json:"url"`
	Address   string `json:"address,omitempty"`
	Reachable bool   `json:"reachable"`
	Millis    int64  `json:"connect_ms,omitempty"`
	Error     string `json:"error,omitempty"`
}

// cmdStatus is `keel-relay status`.
func cmdStatus(args []string, stdout, stderr io.Writer) int {
	var asJSON *bool
	var timeout *time.Duration
	in, _, code := inspectSetup("status", args, 0, stderr, func(fs *flag.FlagSet) func() bool {
		asJSON = fs.Bool("json", false, "print the JSON report")
		timeout = fs.Duration("timeout", 3*time.Second, "bound of the upstream reachability check (0: no check)")
		return nil
	})
	if in == nil {
		return code
	}
	defer in.close()
	rep, err := in.status()
	if err != nil {
		return fail(stderr, err)
	}
	if in.cfg != nil && in.cfg.Upstream != "" && *timeout > 0 {
		rep.Upstream = checkUpstream(in.cfg.Upstream, *timeout)
	}
	if *asJSON {
		printJSON(stdout, rep)
	} else {
		writeStatus(stdout, rep, time.Now())
	}
	if rep.Health != "ok" && rep.Health != "stopped" {
		return 1
	}
	return 0
}

// status builds the report, but the upstream check.
func (in *inspector) status() (statusReport, error) {
	if in.store == nil {
		return in.onlineStatus()
	}
	cfg, st := in.cfg, in.store
	rep := statusReport{Source: "data_dir " + cfg.DataDir + " (relay stopped)", Health: "stopped", NodeID: cfg.NodeID, Role: cfg.Role}
	rep.Store.Files = st.FileCount()
	if n, err := st.DiskUsage(); err == nil {
		rep.Store.Bytes = n
	}
	if sp := st.Space(); sp.Known() {
		rep.Store.Disk = &httpapi.DiskStatus{FreeBytes: sp.Free, NeedBytes: sp.Need, ReserveBytes: sp.Reserve,
			BallastBytes: sp.Ballast, BallastWantBytes: sp.BallastSize, Full: sp.Full()}
		if sp.Full() {
			rep.Reason = sp.Reason() + ": the relay would start refusing writes"
		}
	}
	plan, _ := relay.MemoryPlan(cfg)
	rep.Memory = &httpapi.MemoryStatus{LimitBytes: plan.Bytes, Source: plan.Source, NearAtBytes: plan.NearAt}
	q, err := inspect.ListQueue(st, 0)
	if err != nil {
		return rep, err
	}
	rep.Queue = q
	if cfg.Role == config.RoleRelay {
		u := st.AgentUploadStats()
		rep.Uploads = &httpapi.AgentUploadsStatus{Waiting: u.Waiting, Failed: u.Failed, WaitingBytes: u.WaitingBytes}
		if !u.OldestWaiting.IsZero() {
			rep.Uploads.OldestWaitingSec = max(int64(time.Since(u.OldestWaiting).Seconds()), 0)
		}
	}
	m, source, err := in.nodeMap()
	if err != nil {
		rep.NodeMap.LastError = err.Error()
	} else {
		rep.NodeMap.Nodes, rep.NodeMap.Digest = m.Len(), m.Digest()
		rep.NodeMap.Kept = strings.HasPrefix(source, "kept in the store")
	}
	return rep, nil
}

// onlineStatus asks the running relay: its /status (also when it answers 503: draining, disk
// full) and the summary of its queue.
func (in *inspector) onlineStatus() (statusReport, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := in.admin
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/status", nil)
	if err != nil {
		return statusReport{}, err
	}
	c.token.Set(req)
	resp, err := c.client.Do(req)
	if err != nil {
		return statusReport{}, fmt.Errorf("admin listener: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return statusReport{}, fmt.Errorf("GET /status: %w", err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return statusReport{}, fmt.Errorf("GET /status: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var st httpapi.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return statusReport{}, fmt.Errorf("GET /status: %w", err)
	}
	rep := statusReport{Source: "admin API " + strings.TrimPrefix(c.base, "http://"), Running: true, Health: st.Status, Reason: st.StatusReason,
		NodeID: st.NodeID, Role: st.Role, Version: st.Version, UptimeSec: st.UptimeSec, Memory: st.Memory,
		Store: storeReport{Files: st.Files, Bytes: st.StoreBytes, Disk: st.Disk}, Uploads: st.AgentUploads, NodeMap: st.NodeMap}
	edge := st.EdgeDaemons
	rep.Edge = &edge
	if rep.Queue, err = in.queue(0); err != nil {
		return rep, err
	}
	return rep, nil
}

// checkUpstream dials the upstream's address once, within timeout.
func checkUpstream(upstream string, timeout time.Duration) *upstreamCheck {
	chk := &upstreamCheck{URL: upstream}
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		chk.Error = fmt.Sprintf("not a URL with a host: %q", upstream)
		return chk
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	chk.Address = net.JoinHostPort(u.Hostname(), port)
	start := time.Now()
	conn, err := net.DialTimeout("tcp", chk.Address, timeout)
	if err != nil {
		chk.Error = err.Error()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			chk.Error = fmt.Sprintf("no answer within %s", timeout)
		}
		return chk
	}
	_ = conn.Close()
	chk.Reachable, chk.Millis = true, time.Since(start).Milliseconds()
	return chk
}

// writeStatus prints the report on one screen, times relative to now.
func writeStatus(w io.Writer, r statusReport, now time.Time) {
	fb := membudget.FormatBytes
	head := fmt.Sprintf("%s (%s", r.NodeID, r.Role)
	if r.Version != "" {
		head += " " + r.Version
	}
	head += ")"
	health := r.Health
	if r.Health != "ok" && r.Health != "stopped" {
		health = strings.ToUpper(health) // draining, disk_full
	}
	if r.UptimeSec > 0 {
		health += ", up " + ago(time.Duration(r.UptimeSec)*time.Second)
	}
	fmt.Fprintf(w, "relay:     %s: %s  [%s]\n", head, health, r.Source)
	if r.Reason != "" {
		fmt.Fprintf(w, "           %s\n", r.Reason)
	}
	if m := r.Memory; m != nil {
		limit := "no limit known"
		if m.LimitBytes > 0 {
			limit = fb(m.LimitBytes) + " (" + m.Source + ")"
		}
		switch {
		case r.Running:
			line := fmt.Sprintf("%s in use of %s", fb(m.InUseBytes), limit)
			if m.NearAtBytes > 0 {
				line += ", new work refused from " + fb(m.NearAtBytes)
			}
			if m.NearLimit {
				line += "  NEAR THE LIMIT"
			}
			fmt.Fprintf(w, "memory:    %s\n", line)
		default:
			fmt.Fprintf(w, "memory:    budget %s\n", limit)
		}
	}
	store := fmt.Sprintf("%d file(s), %s on disk", r.Store.Files, fb(r.Store.Bytes))
	if d := r.Store.Disk; d != nil {
		store += fmt.Sprintf("; %s free, writes need %s", fb(d.FreeBytes), fb(d.NeedBytes))
		if d.Full {
			store += "  DISK FULL"
		}
	}
	fmt.Fprintf(w, "store:     %s\n", store)
	q := r.Queue
	queue := fmt.Sprintf("%d forward(s), %s", q.Total, fb(q.Bytes))
	if q.OldestQueued != nil {
		queue += ", oldest queued " + ago(now.Sub(*q.OldestQueued)) + " ago"
	}
	fmt.Fprintf(w, "queue:     %s\n", queue)
	if q.LastError != "" {
		fmt.Fprintf(w, "           last error (job %s): %s\n", q.LastErrorJob, short(oneLine(q.LastError), 100))
	}
	if u := r.Uploads; u != nil {
		line := fmt.Sprintf("%d waiting (%s", u.Waiting, fb(u.WaitingBytes))
		if u.Waiting > 0 {
			line += fmt.Sprintf(", oldest %s", ago(time.Duration(u.OldestWaitingSec)*time.Second))
		}
		line += fmt.Sprintf("), %d failed", u.Failed)
		fmt.Fprintf(w, "uploads:   %s\n", line)
	}
	nm := r.NodeMap
	nodes := fmt.Sprintf("%d node(s)", nm.Nodes)
	if !nm.LoadedAt.IsZero() {
		nodes += ", loaded " + ago(now.Sub(nm.LoadedAt)) + " ago"
	}
	if nm.Kept {
		nodes += ", kept in the store"
	}
	fmt.Fprintf(w, "node map:  %s\n", nodes)
	for _, e := range []string{nm.LastError, nm.KeepError} {
		if e != "" {
			fmt.Fprintf(w, "           %s\n", short(oneLine(e), 160))
		}
	}
	switch u := r.Upstream; {
	case u == nil && r.Role == config.RoleRoot:
		fmt.Fprintln(w, "upstream:  none (root server)")
	case u == nil:
	case u.Reachable:
		fmt.Fprintf(w, "upstream:  %s reachable (TCP %s in %dms)\n", u.URL, u.Address, u.Millis)
	default:
		fmt.Fprintf(w, "upstream:  %s UNREACHABLE: %s\n", u.URL, u.Error)
	}
	if r.Edge != nil {
		fmt.Fprintf(w, "edge:      %d daemon(s) connected\n", *r.Edge)
	}
}
