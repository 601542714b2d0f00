package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/keel-relay/keel/internal/confload"
	"github.com/keel-relay/keel/internal/wire/keyhash"
	"github.com/keel-relay/keel/relay/access"
)

// IsLoopbackListen reports whether a listen address (host:port) only accepts connections
// from the machine itself: a loopback IP or "localhost".
func IsLoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// checkListen checks a listen address: host:port with a numeric port; the host
// may be empty (all interfaces), an IP or a host name.
func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || strings.HasPrefix(port, "+") {
		return fmt.Errorf("%q: port %q is not a number between 0 and 65535", s, port)
	}
	if host != "" && !confload.IsHostName(host) {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q: %q is not an IP address or host name", s, host)
		}
	}
	return nil
}

// checkNetwork checks one item of a network list (http.allowed_networks, ...) by the
// rule the relay's allow-lists read it with (access.Parse): a CIDR or a single IP, no
// zone. access.Parse would trim surrounding space; the config refuses it, as it always has.
func checkNetwork(s string) error {
	if strings.TrimSpace(s) != s {
		return fmt.Errorf("%q has leading or trailing space", s)
	}
	_, err := access.Parse([]string{s})
	return err
}

// checkBaseURL checks an upstream base URL: absolute http(s), a host, no query or
// fragment; http only when allowHTTP.
func checkBaseURL(s string, allowHTTP bool) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	if err := checkScheme(s, u, allowHTTP); err != nil {
		return err
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("%q must not have a query or fragment", s)
	}
	return nil
}

func checkScheme(s string, u *url.URL, allowHTTP bool) error {
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%q is not an absolute http:// or https:// URL", s)
	case u.Host == "":
		return fmt.Errorf("%q has no host", s)
	case u.Scheme == "http" && !allowHTTP:
		return fmt.Errorf("%q is plain http (set forward.allow_http to allow it)", s)
	}
	return nil
}

// checkSubRelayURL checks the sub-relay URL template.
func checkSubRelayURL(s string, allowHTTP bool) error {
	if !strings.Contains(s, "{hostname}") && !strings.Contains(s, "{node_id}") {
		return fmt.Errorf("%q contains neither {hostname} nor {node_id}", s)
	}
	sample := strings.NewReplacer("{hostname}", "relay.example", "{node_id}", "node").Replace(s)
	if strings.ContainsAny(sample, "{}") {
		return fmt.Errorf("%q has a placeholder other than {hostname} and {node_id}", s)
	}
	u, err := url.Parse(sample)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	return checkScheme(s, u, allowHTTP)
}

// checkCommandArg checks argument i of remote_run.command: not empty, no NUL
// byte, and every "{...}" one of {hostname}, {node_id} and {classes}; the
// program (i == 0) has no placeholder at all. Unpaired braces are literal.
func checkCommandArg(i int, arg string) error {
	return confload.CheckCommandArg(i, arg, "{hostname}", "{node_id}", "{classes}")
}

// checkKeyHash checks a pinned key hash with keyhash.Parse, the rule the node map's key-hash
// follows: sha256//<base64>, sha512//<base64> (padded), sha256:<hex> or sha512:<hex>, of the
// right length.
func checkKeyHash(s string) error {
	_, err := keyhash.Parse(s)
	return err
}
