package access

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseAndAllows(t *testing.T) {
	tests := []struct {
		name   string
		cidrs  []string
		str    string
		allow  []string
		refuse []string
	}{
		{name: "empty allows nothing", cidrs: nil, str: "",
			refuse: []string{"127.0.0.1", "::1", "0.0.0.0", "::"}},
		{name: "loopback", cidrs: []string{"127.0.0.0/8", "::1"}, str: "127.0.0.0/8, ::1/128",
			allow:  []string{"127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"},
			refuse: []string{"128.0.0.1", "::2", "10.0.0.1"}},
		{name: "bare addresses", cidrs: []string{" 192.0.2.7 ", "2001:db8::7"}, str: "192.0.2.7/32, 2001:db8::7/128",
			allow:  []string{"192.0.2.7", "::ffff:192.0.2.7", "2001:db8::7"},
			refuse: []string{"192.0.2.8", "2001:db8::8"}},
		{name: "host bits are masked", cidrs: []string{"10.1.2.3/8", "2001:db8::1/32"}, str: "10.0.0.0/8, 2001:db8::/32",
			allow:  []string{"10.200.0.1", "2001:db8:ffff::1"},
			refuse: []string{"11.0.0.1", "2001:db9::1"}},
		{name: "IPv4-mapped entries become IPv4", cidrs: []string{"::ffff:10.0.0.0/104", "::ffff:192.0.2.1"},
			str:    "10.0.0.0/8, 192.0.2.1/32",
			allow:  []string{"10.9.9.9", "::ffff:10.9.9.9", "192.0.2.1"},
			refuse: []string{"11.0.0.1", "192.0.2.2"}},
		{name: "everything", cidrs: []string{"0.0.0.0/0", "::/0"}, str: "0.0.0.0/0, ::/0",
			allow: []string{"1.2.3.4", "::ffff:1.2.3.4", "2001:db8::1", "fe80::1%eth0"}},
		{name: "IPv4 only does not match IPv6", cidrs: []string{"0.0.0.0/0"}, str: "0.0.0.0/0",
			allow: []string{"8.8.8.8"}, refuse: []string{"2001:db8::1", "::1"}},
		{name: "link-local with zone", cidrs: []string{"fe80::/10"}, str: "fe80::/10",
			allow: []string{"fe80::1", "fe80::1%eth0"}, refuse: []string{"fec0::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse(tt.cidrs)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := l.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			for _, s := range tt.allow {
				if !l.Allows(netip.MustParseAddr(s)) {
					t.Errorf("Allows(%s) = false, want true", s)
				}
			}
			for _, s := range tt.refuse {
				if l.Allows(netip.MustParseAddr(s)) {
					t.Errorf("Allows(%s) = true, want false", s)
				}
			}
			if l.Allows(netip.Addr{}) {
				t.Error("Allows(zero Addr) = true")
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		cidrs []string
		want  string
	}{
		{[]string{"127.0.0.1", ""}, `access list entry "": empty entry`},
		{[]string{"  "}, `access list entry "  ": empty entry`},
		{[]string{"localhost"}, `access list entry "localhost": not an IP address: ParseAddr("localhost"): unable to parse IP`},
		{[]string{"10.0.0.0/33"}, `access list entry "10.0.0.0/33": not a CIDR: netip.ParsePrefix("10.0.0.0/33"): prefix length out of range`},
		{[]string{"10.0.0.0/"}, `access list entry "10.0.0.0/": not a CIDR: netip.ParsePrefix("10.0.0.0/"): bad bits after slash: ""`},
		{[]string{"10.0.0/8"}, `access list entry "10.0.0/8": not a CIDR: netip.ParsePrefix("10.0.0/8"): ParseAddr("10.0.0"): IPv4 address too short`},
		{[]string{"::1/129"}, `access list entry "::1/129": not a CIDR: netip.ParsePrefix("::1/129"): prefix length out of range`},
		{[]string{"fe80::1%eth0"}, `access list entry "fe80::1%eth0": address with a zone`},
		{[]string{"fe80::%eth0/10"}, `access list entry "fe80::%eth0/10": not a CIDR: netip.ParsePrefix("fe80::%eth0/10"): IPv6 zones cannot be present in a prefix`},
		{[]string{"::ffff:0.0.0.0/95"}, `access list entry "::ffff:0.0.0.0/95": IPv4-mapped prefix shorter than /96`},
		{[]string{"10.0.0.1:80"}, `access list entry "10.0.0.1:80": not an IP address: ParseAddr("10.0.0.1:80"): unexpected character (at ":80")`},
	}
	for _, tt := range tests {
		l, err := Parse(tt.cidrs)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want error %s", tt.cidrs, l, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Parse(%q) error:\n got %s\nwant %s", tt.cidrs, err, tt.want)
		}
	}
}

func TestNilList(t *testing.T) {
	var l *List
	if l.Allows(netip.MustParseAddr("127.0.0.1")) || l.String() != "" {
		t.Error("nil List allows something or prints something")
	}
	var z List
	if z.Allows(netip.MustParseAddr("127.0.0.1")) {
		t.Error("zero List allows something")
	}
}

func TestPeerAddr(t *testing.T) {
	good := map[string]string{
		"127.0.0.1:3030":          "127.0.0.1",
		"[::1]:443":               "::1",
		"[::ffff:127.0.0.1]:5309": "127.0.0.1",
		"[fe80::1%eth0]:80":       "fe80::1%eth0",
		"192.0.2.1:0":             "192.0.2.1",
	}
	for in, want := range good {
		got, err := PeerAddr(in)
		if err != nil || got.String() != want {
			t.Errorf("PeerAddr(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":              `peer address "": not an ip:port`,
		"127.0.0.1":     `peer address "127.0.0.1": not an ip:port`,
		"::1:80":        `peer address "::1:80": invalid ip:port "::1:80", IPv6 addresses must be surrounded by square brackets`,
		"example.org:1": `peer address "example.org:1": ParseAddr("example.org"): unexpected character (at "example.org")`,
		"@":             `peer address "@": not an ip:port`,
		"1.2.3.4:99999": `peer address "1.2.3.4:99999": invalid port "99999" parsing "1.2.3.4:99999"`,
	}
	for in, want := range bad {
		got, err := PeerAddr(in)
		if err == nil || err.Error() != want {
			t.Errorf("PeerAddr(%q) = %v, %v; want error %s", in, got, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"127.0.0.0/8", "::1", "10.1.2.3/8", "::ffff:10.0.0.0/104", "fe80::1%eth0", "0.0.0.0/0",
		"", "localhost", "10.0.0.0/33", "::ffff:0.0.0.0/95", "1.2.3.4/32,::/0",
	} {
		f.Add(s, "127.0.0.1")
	}
	f.Fuzz(func(t *testing.T, entries, addr string) {
		l, err := Parse(strings.Split(entries, ","))
		if err != nil {
			if l != nil {
				t.Fatal("Parse returned a list and an error")
			}
			return
		}
		// The canonical form parses back to the same list.
		var again []string
		if s := l.String(); s != "" {
			again = strings.Split(s, ", ")
		}
		l2, err := Parse(again)
		if err != nil || l2.String() != l.String() {
			t.Fatalf("String() %q does not round-trip: %v, %q", l.String(), err, l2)
		}
		for _, p := range l.prefixes {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("stored prefix %v is not canonical", p)
			}
			if !l.Allows(p.Addr()) {
				t.Fatalf("list %q does not allow its own prefix address %v", l, p.Addr())
			}
		}
		if a, err := netip.ParseAddr(addr); err == nil {
			if l.Allows(a) != l.Allows(a.Unmap()) {
				t.Fatalf("Allows(%v) differs from Allows(%v)", a, a.Unmap())
			}
		}
	})
}
