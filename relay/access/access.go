// Package access implements CIDR allow-lists for the relay's HTTP endpoints.
package access

import (
	"fmt"
	"net/netip"
	"strings"
)

// List is an allow-list of IPv4 and IPv6 prefixes. The zero value and an empty list allow
// nothing. A List is immutable and safe for concurrent use.
type List struct {
	prefixes []netip.Prefix
}

// Parse builds a List from CIDRs ("10.0.0.0/8", "2001:db8::/32") and bare addresses
// ("127.0.0.1", "::1"). A CIDR with host bits set is masked ("10.1.2.3/8" is 10.0.0.0/8);
// IPv4-mapped IPv6 entries ("::ffff:10.0.0.0/104") are turned into their IPv4 form.
// Addresses with a zone are refused. The error names the bad entry.
func Parse(cidrs []string) (*List, error) {
	l := &List{prefixes: make([]netip.Prefix, 0, len(cidrs))}
	for _, s := range cidrs {
		p, err := parseEntry(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("access list entry %q: %w", s, err)
		}
		l.prefixes = append(l.prefixes, p)
	}
	return l, nil
}

func parseEntry(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("empty entry")
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("not a CIDR: %w", err)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an IP address: %w", err)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("address with a zone")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("IPv4-mapped prefix shorter than /96")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Allows reports whether addr is inside one of the list's prefixes. IPv4-mapped IPv6 addresses
// (::ffff:a.b.c.d, as seen on dual-stack sockets) are matched as IPv4, and a zone is ignored.
func (l *List) Allows(addr netip.Addr) bool {
	if l == nil || !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range l.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// String returns the list's prefixes in canonical form, separated by ", " ("" when empty).
func (l *List) String() string {
	if l == nil {
		return ""
	}
	parts := make([]string, len(l.prefixes))
	for i, p := range l.prefixes {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}

// PeerAddr returns the address part of an http.Request.RemoteAddr ("ip:port" or "[v6]:port"),
// with IPv4-mapped IPv6 addresses turned into IPv4.
func PeerAddr(remoteAddr string) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("peer address %q: %w", remoteAddr, err)
	}
	return ap.Addr().Unmap(), nil
}
