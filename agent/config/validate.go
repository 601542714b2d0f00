package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keel-relay/keel/internal/confload"
	"github.com/keel-relay/keel/internal/wire/ids"
	"github.com/keel-relay/keel/internal/wire/keyhash"
)

// Limits enforced by Validate.
const (
	MaxHTTPTimeout       = time.Hour
	MinHeartbeatInterval = time.Second
	MaxHeartbeatInterval = time.Hour
	MaxToolsConcurrent   = 256
	maxTextLen           = 255 // hostname, keydate, keyid
	maxLabelLen          = 255 // one edge label, key=value
)

// SplitLabel splits an edge label "key=value": the key is 1-63 characters of
// [A-Za-z0-9._-], the value at most 255 bytes with no control characters.
func SplitLabel(l string) (key, value string, err error) {
	k, v, ok := strings.Cut(l, "=")
	switch {
	case !ok:
		return "", "", fmt.Errorf("%q is not key=value", l)
	case k == "" || len(k) > 63:
		return "", "", fmt.Errorf("%q: the key must be 1 to 63 characters", l)
	case strings.ContainsFunc(k, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}):
		return "", "", fmt.Errorf("%q: the key may only contain letters, digits, '.', '_' and '-'", l)
	case len(l) > maxLabelLen:
		return "", "", fmt.Errorf("label is %d bytes long, more than %d", len(l), maxLabelLen)
	case strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return "", "", fmt.Errorf("%q contains a control character", l)
	}
	return k, v, nil
}

// Validate checks every key and returns one error per bad key (joined with
// errors.Join), each message starting with the dotted key.
func (c *Config) Validate() error {
	var p confload.Problems
	c.checkIdentity(&p)
	c.Log.Check(&p)
	c.checkHTTP(&p)
	c.Edge.check(&p)
	return p.Err()
}

// checkIdentity checks what names this node and its relay: node_id (or uuid_file),
// relay_url, key_file, hostname, keydate and keyid.
func (c *Config) checkIdentity(p *confload.Problems) {
	if c.NodeID != "" {
		if err := ids.ValidNodeID(c.NodeID); err != nil {
			p.Add("node_id", "%v", err)
		}
	}
	if c.NodeID == "" && c.UUIDFile == "" {
		p.Add("uuid_file", "must not be empty when node_id is empty (one of them names this node)")
	}
	if err := checkRelayURL(c.RelayURL); err != nil {
		p.Add("relay_url", "%v", err)
	}
	if c.KeyFile == "" {
		p.Add("key_file", "must not be empty")
	}
	for _, f := range []struct{ key, val string }{{"hostname", c.Hostname}, {"keydate", c.KeyDate}, {"keyid", c.KeyID}} {
		if err := checkLineText(f.val); err != nil {
			p.Add(f.key, "%v", err)
		}
	}
}

// checkHTTP checks the http section and how it agrees with relay_url.
func (c *Config) checkHTTP(p *confload.Problems) {
	if c.HTTP.Timeout <= 0 || c.HTTP.Timeout > MaxHTTPTimeout {
		p.Add("http.timeout", "must be > 0 and at most %s, got %s", formatDuration(MaxHTTPTimeout), formatDuration(c.HTTP.Timeout))
	}
	if c.HTTP.KeyHash != "" {
		if _, err := keyhash.Parse(c.HTTP.KeyHash); err != nil {
			p.Add("http.key_hash", "%v", err)
		}
		if c.HTTP.CAFile != "" {
			p.Add("http.key_hash", "set together with http.ca_file: use one way to verify the relay")
		}
	}
	if c.HTTP.CAFile != "" || c.HTTP.KeyHash != "" {
		if u, err := url.Parse(c.RelayURL); err == nil && u.Scheme == "http" {
			p.Add("relay_url", "%q is plain http, but http.ca_file or http.key_hash is set (use https://)", c.RelayURL)
		}
	}
}

// check checks the edge section.
func (e *EdgeConfig) check(p *confload.Problems) {
	if e.Relay != "" {
		if err := checkHostPort(e.Relay); err != nil {
			p.Add("edge.relay", "%v", err)
		}
	}
	if e.KeyFile == "" {
		p.Add("edge.key_file", "must not be empty")
	}
	if e.TokenFile == "" {
		p.Add("edge.token_file", "must not be empty")
	}
	if e.HeartbeatInterval < MinHeartbeatInterval || e.HeartbeatInterval > MaxHeartbeatInterval {
		p.Add("edge.heartbeat_interval", "must be between %s and %s, got %s",
			formatDuration(MinHeartbeatInterval), formatDuration(MaxHeartbeatInterval), formatDuration(e.HeartbeatInterval))
	}
	e.checkLabels(p)
	e.Tools.check(p)
}

// checkLabels checks edge.labels: each a valid key=value, each key once.
func (e *EdgeConfig) checkLabels(p *confload.Problems) {
	seen := make(map[string]bool, len(e.Labels))
	for i, l := range e.Labels {
		k, _, err := SplitLabel(l)
		switch {
		case err != nil:
			p.Add(fmt.Sprintf("edge.labels[%d]", i), "%v", err)
		case seen[k]:
			p.Add(fmt.Sprintf("edge.labels[%d]", i), "duplicate label %q", k)
		}
		seen[k] = true
	}
}

// check checks the edge.tools section.
func (t *ToolsConfig) check(p *confload.Problems) {
	if t.MaxConcurrent < 1 || t.MaxConcurrent > MaxToolsConcurrent {
		p.Add("edge.tools.max_concurrent", "must be between 1 and %d, got %d", MaxToolsConcurrent, t.MaxConcurrent)
	}
	cmd := t.AgentRun.Command
	if len(cmd) == 0 {
		p.Add("edge.tools.agent_run.command", "must not be empty (a list: program, then arguments)")
	}
	for i, arg := range cmd {
		if err := checkCommandArg(i, arg); err != nil {
			p.Add(fmt.Sprintf("edge.tools.agent_run.command[%d]", i), "%v", err)
		}
	}
}

// checkRelayURL checks relay_url: an absolute http(s) URL with a host, no
// query, fragment or user info.
func checkRelayURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return errors.New("must not be empty")
	case err != nil:
		return fmt.Errorf("%q is not a URL", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q is not an absolute http:// or https:// URL", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q has no host", s)
	case u.User != nil:
		return fmt.Errorf("%q must not contain user info", s)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Errorf("%q must not have a query or fragment", s)
	}
	return nil
}

// checkHostPort checks edge.relay: host:port with a host and a port 1-65535.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", s)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || strings.HasPrefix(port, "+") {
		return fmt.Errorf("%q: port %q is not a number between 1 and 65535", s, port)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if !confload.IsHostName(host) {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q: %q is not an IP address or host name", s, host)
		}
	}
	return nil
}

// checkLineText checks a value that goes on one line of a signature block:
// at most maxTextLen bytes, no control characters, no leading or trailing
// space (the block's reader would trim it).
func checkLineText(s string) error {
	switch {
	case len(s) > maxTextLen:
		return fmt.Errorf("is %d bytes long, more than %d", len(s), maxTextLen)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("%q has leading or trailing space", s)
	case strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return fmt.Errorf("%q contains a control character", s)
	}
	return nil
}

// checkCommandArg checks argument i of edge.tools.agent_run.command: not empty,
// no NUL byte, and every "{...}" is {classes}; the program (i == 0) has no
// placeholder at all. Unpaired braces are literal.
func checkCommandArg(i int, arg string) error {
	return confload.CheckCommandArg(i, arg, "{classes}")
}
