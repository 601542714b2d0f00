package remoterun

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keel-relay/keel/internal/wire/runoutput"
	"github.com/keel-relay/keel/relay/forward"
)

// runSubRelay asks a sub-relay to run its share of the call and merges its streamed answer,
// line by line, into out. nodes are the ids asked of it (nil with all); when the call fails,
// each of them gets a result line saying why. It returns how many result lines it passed on.
func runSubRelay(ctx context.Context, hop forward.Hop, p Params, nodes []string, idle time.Duration, out func([]byte)) (int, error) {
	form := url.Values{}
	form.Set("keep_output", strconv.FormatBool(p.KeepOutput))
	form.Set("asynchronous", strconv.FormatBool(p.Async))
	form.Set("classes", strings.Join(p.Classes, ","))
	path := "/rudder/relay-api/remote-run/all"
	if !p.All {
		path = "/rudder/relay-api/remote-run/nodes"
		form.Set("nodes", strings.Join(nodes, ","))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hop.BaseURL+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "keel-relay remote-run")
	resp, err := hop.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST %s%s: %w", hop.BaseURL, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("sub-relay %s answered %s: %s", hop.Name(), resp.Status, strings.TrimSpace(string(msg)))
	}
	// A sub-relay that stops sending (but keeps the connection) is cut after idle.
	watchdog := time.AfterFunc(idle, cancel)
	defer watchdog.Stop()
	results := 0
	// The answer is in runoutput's format: its lines are cut at MaxStreamLine, which no whole
	// output line or result line exceeds.
	lines := &runoutput.LineSplitter{Max: runoutput.MaxStreamLine, Out: func(line []byte) {
		watchdog.Reset(idle)
		if runoutput.IsResultLine(line) {
			results++
		}
		out(line)
	}}
	_, err = io.Copy(lines, resp.Body)
	lines.Flush()
	if err != nil {
		return results, fmt.Errorf("reading the answer of sub-relay %s: %w", hop.Name(), err)
	}
	return results, nil
}
