// Package ratelimit limits how often a source may do something: at most N times in any
// sliding window, with a bounded number of tracked sources. It is used for the anonymous
// AttestNode RPC (5 per minute per source IP). SourceKey and NetworkKey name a peer's
// source and network.
package ratelimit

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultMaxKeys bounds the number of sources tracked at once when Options.MaxKeys is 0.
const DefaultMaxKeys = 16384

// Limiter allows each key at most N events per Window. It is safe for concurrent use.
type Limiter struct {
	n       int
	window  time.Duration
	maxKeys int

	mu        sync.Mutex
	keys      map[string][]time.Time // each slice holds at most n times, oldest first
	lastPrune time.Time
}

// New returns a limiter allowing n events per window for each key, tracking at most maxKeys
// keys (0 = DefaultMaxKeys). When every tracked key is still active, a new key is refused
// (fail closed) rather than evicting one.
func New(n int, window time.Duration, maxKeys int) *Limiter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Limiter{n: n, window: window, maxKeys: maxKeys, keys: make(map[string][]time.Time)}
}

// Allow records an event for key at now and reports whether it is within the limit.
// A refused event is not recorded.
func (l *Limiter) Allow(key string, now time.Time) bool {
	if l.n <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	times, ok := l.keys[key]
	if !ok && len(l.keys) >= l.maxKeys {
		l.prune(now)
		if len(l.keys) >= l.maxKeys {
			return false
		}
	}
	cut := now.Add(-l.window)
	i := 0
	for i < len(times) && !times[i].After(cut) {
		i++
	}
	times = times[i:]
	if len(times) >= l.n {
		l.keys[key] = times
		return false
	}
	next := make([]time.Time, len(times), l.n)
	copy(next, times)
	l.keys[key] = append(next, now)
	return true
}

// prune forgets keys with no event inside the window; it runs at most once a second so a
// flood of new keys cannot make every call walk the whole map.
func (l *Limiter) prune(now time.Time) {
	if now.Sub(l.lastPrune) < time.Second && !l.lastPrune.IsZero() {
		return
	}
	l.lastPrune = now
	cut := now.Add(-l.window)
	for k, times := range l.keys {
		if len(times) == 0 || !times[len(times)-1].After(cut) {
			delete(l.keys, k)
		}
	}
}

// Len returns the number of keys tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// SourceKey returns the rate-limit key of a peer address: its IP for IPv4, its /64 prefix
// for IPv6 (one host usually holds a whole /64), and the address string otherwise.
func SourceKey(addr net.Addr) string {
	ip, ok := addrIP(addr)
	if !ok {
		return otherKey(addr)
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// NetworkKey returns the network of a peer address, wider than its SourceKey: its /24
// prefix for IPv4, its /48 for IPv6 (a site usually holds a /48 to a /56), and the address
// string otherwise.
func NetworkKey(addr net.Addr) string {
	ip, ok := addrIP(addr)
	if !ok {
		return otherKey(addr)
	}
	bits := 24
	if ip.Is6() {
		bits = 48
	}
	p, _ := ip.Prefix(bits)
	return p.String()
}

// addrIP returns the IP of a peer address, IPv4-mapped addresses unmapped and zones dropped.
func addrIP(addr net.Addr) (netip.Addr, bool) {
	if addr == nil {
		return netip.Addr{}, false
	}
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
			ip = ap.Addr()
		}
	}
	if !ip.IsValid() {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}

// otherKey is the key of an address without an IP.
func otherKey(addr net.Addr) string {
	if addr == nil {
		return "unknown"
	}
	return addr.Network() + ":" + addr.String()
}
