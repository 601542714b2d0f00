package config

import (
	"math"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
	}{
		{"0", 0},
		{"1048576", MiB},
		{"256MiB", 256 * MiB},
		{"64 MiB", 64 * MiB},
		{" 1GiB ", GiB},
		{"512KiB", 512 * KiB},
		{"2TiB", 2 * TiB},
		{"10MB", 10_000_000},
		{"3kb", 3000},
		{"7GB", 7_000_000_000},
		{"1TB", 1_000_000_000_000},
		{"5mib", 5 * MiB},
		{"100B", 100},
		{"100 b", 100},
		{"007", 7},
		{"9223372036854775807", math.MaxInt64},
		{"8388607TiB", 8388607 * TiB},
	} {
		got, err := ParseByteSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseByteSizeRefuses(t *testing.T) {
	const want = "want a whole number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
	for _, tc := range []struct{ in, want string }{
		{"", `invalid size "": ` + want},
		{"  ", `invalid size "  ": ` + want},
		{"MiB", `invalid size "MiB": ` + want},
		{"-1", `invalid size "-1": must not be negative`},
		{"-1MiB", `invalid size "-1MiB": must not be negative`},
		{"+1", `invalid size "+1": ` + want},
		{"1.5GiB", `invalid size "1.5GiB": unknown unit ".5GiB" (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
		{"1 M", `invalid size "1 M": unknown unit "M" (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
		{"12 parsecs", `invalid size "12 parsecs": unknown unit "parsecs" (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
		{"1\u212aiB", "invalid size \"1\\u212aiB\": unknown unit \"\\u212aiB\" (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"},
		{"1 2", `invalid size "1 2": unknown unit "2" (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
		{"0x10", `invalid size "0x10": unknown unit "x10" (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
		{"9223372036854775808", `invalid size "9223372036854775808": too large`},
		{"8388608TiB", `invalid size "8388608TiB": too large`},
		{"99999999999999999999999GB", `invalid size "99999999999999999999999GB": too large`},
	} {
		got, err := ParseByteSize(tc.in)
		if err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want error", tc.in, got)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("ParseByteSize(%q) error:\n%s\nwant:\n%s", tc.in, err, tc.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{KiB, "1KiB"},
		{1536, "1536B"},
		{256 * MiB, "256MiB"},
		{1024 * MiB, "1GiB"},
		{GiB - 1, "1073741823B"},
		{3 * TiB, "3TiB"},
		{10_000_000, "10000000B"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		back, err := ParseByteSize(tc.in.String())
		if err != nil || back != tc.in {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in.String(), back, err, tc.in)
		}
	}
}

func TestParseAutoByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want AutoByteSize
	}{
		{"auto", Auto},
		{" AUTO ", Auto},
		{"Auto", Auto},
		{"0", 0},
		{"2GiB", AutoByteSize(2 * GiB)},
		{"512 MB", 512_000_000},
	} {
		got, err := ParseAutoByteSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseAutoByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if back, err := ParseAutoByteSize(got.String()); err != nil || back != got {
			t.Errorf("ParseAutoByteSize(%q).String() = %q reads back %d, %v", tc.in, got.String(), back, err)
		}
	}
	const units = "want a whole number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), or auto"
	for _, tc := range []struct{ in, want string }{
		{"", `invalid size "": ` + units},
		{"automatic", `invalid size "automatic": ` + units},
		{"au to", `invalid size "au to": ` + units},
		{"-1", `invalid size "-1": must not be negative, or auto`},
		{"5 parsecs", `invalid size "5 parsecs": unknown unit "parsecs" (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB), or auto`},
		{"9223372036854775808", `invalid size "9223372036854775808": too large, or auto`},
	} {
		got, err := ParseAutoByteSize(tc.in)
		if err == nil {
			t.Errorf("ParseAutoByteSize(%q) = %d, want error", tc.in, got)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("ParseAutoByteSize(%q) error:\n%s\nwant:\n%s", tc.in, err, tc.want)
		}
	}
}
