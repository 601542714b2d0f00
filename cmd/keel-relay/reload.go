package main

// `keel-relay reload`: the unit's ExecReload. It asks the running relay to reload through
// its admin listener and waits for the outcome, so that `systemctl reload keel-relay` fails,
// with the reason, when the new config or node map is refused (kill -HUP cannot tell).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keel-relay/keel/internal/cli"
)

// reloadAnswer is the admin listener's answer to POST /reload.
type reloadAnswer struct {
	Reloaded bool   `json:"reloaded"`
	Error    string `json:"error"`
	Nodes    int    `json:"nodes"`
}

// cmdReload is `keel-relay reload`.
func cmdReload(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	client := edgeFlags(fs)
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for the reload")
	if !cli.NoArgs(fs, args, stderr, "keel-relay reload") {
		return 2
	}
	c, err := client()
	if err != nil {
		return fail(stderr, fmt.Errorf("reload: %w", err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ans, err := c.reload(ctx)
	if err != nil {
		return fail(stderr, fmt.Errorf("reload: %w", err))
	}
	fmt.Fprintf(stdout, "reloaded: %d nodes in the node map\n", ans.Nodes)
	return 0
}

// reload POSTs /reload and returns the relay's answer; a refused reload is an error with
// the relay's reason.
func (c *adminClient) reload(ctx context.Context) (reloadAnswer, error) {
	var ans reloadAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/reload", nil)
	if err != nil {
		return ans, err
	}
	c.token.Set(req)
	resp, err := c.client.Do(req)
	if err != nil {
		return ans, fmt.Errorf("admin listener: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return ans, fmt.Errorf("admin listener: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnprocessableEntity:
		if err := json.Unmarshal(body, &ans); err != nil {
			return ans, fmt.Errorf("admin listener answered %s: %w", resp.Status, err)
		}
		if !ans.Reloaded {
			if ans.Error == "" {
				ans.Error = "refused (no reason given)"
			}
			return ans, errors.New("refused; the relay still serves with what was in force: " + oneLine(ans.Error))
		}
		return ans, nil
	default:
		return ans, fmt.Errorf("admin listener answered %s: %s", resp.Status, oneLine(strings.TrimSpace(string(body))))
	}
}
