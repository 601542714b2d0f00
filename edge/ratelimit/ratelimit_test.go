package ratelimit

import (
	"net"
	"testing"
	"time"
)

func TestAllowWindow(t *testing.T) {
	l := New(5, time.Minute, 0)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 5 {
		if !l.Allow("a", t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("event %d refused", i+1)
		}
	}
	if l.Allow("a", t0.Add(10*time.Second)) {
		t.Fatal("6th event in a minute allowed")
	}
	if !l.Allow("b", t0.Add(10*time.Second)) {
		t.Fatal("another key refused")
	}
	// The first event leaves the window at t0+60s: one slot frees up.
	if !l.Allow("a", t0.Add(60*time.Second+time.Millisecond)) {
		t.Fatal("event after the window refused")
	}
	if l.Allow("a", t0.Add(60*time.Second+2*time.Millisecond)) {
		t.Fatal("second event after one slot freed allowed")
	}
}

func TestMaxKeysFailsClosed(t *testing.T) {
	l := New(1, time.Minute, 2)
	t0 := time.Unix(1_700_000_000, 0)
	if !l.Allow("a", t0) || !l.Allow("b", t0) {
		t.Fatal("first keys refused")
	}
	if l.Allow("c", t0.Add(time.Second)) {
		t.Fatal("third key allowed while the map is full of active keys")
	}
	if !l.Allow("c", t0.Add(2*time.Minute)) {
		t.Fatal("third key refused after the others expired")
	}
	if l.Len() != 1 {
		t.Fatalf("Len = %d, want 1 after pruning", l.Len())
	}
}

func TestZeroLimit(t *testing.T) {
	if New(0, time.Minute, 0).Allow("a", time.Now()) {
		t.Fatal("limit 0 allowed an event")
	}
}

func TestSourceKey(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1234}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 1}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 1}, "::/64"},
		{&net.UnixAddr{Name: "/run/x", Net: "unix"}, "unix:/run/x"},
		{nil, "unknown"},
	} {
		if got := SourceKey(tc.addr); got != tc.want {
			t.Errorf("SourceKey(%v) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func TestNetworkKey(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1234}, "192.0.2.0/24"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.0/24"},
		{&net.TCPAddr{IP: net.ParseIP("127.0.3.250"), Port: 1}, "127.0.3.0/24"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 1}, "2001:db8:1::/48"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0", Port: 1}, "fe80::/48"},
		{&net.TCPAddr{IP: net.IP{1, 2, 3}, Port: 1}, "tcp:?010203:1"},
		{&net.UDPAddr{IP: net.ParseIP("198.51.100.9"), Port: 53}, "198.51.100.0/24"},
		{&net.UnixAddr{Name: "/run/x", Net: "unix"}, "unix:/run/x"},
		{nil, "unknown"},
	} {
		if got := NetworkKey(tc.addr); got != tc.want {
			t.Errorf("NetworkKey(%v) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}
