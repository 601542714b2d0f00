package ttl

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"1", time.Second},
		{"3600", time.Hour},
		{" 10 ", 10 * time.Second},
		{"\t10\t", 10 * time.Second},
		{"007", 7 * time.Second},
		{"1d", day},
		{"1day", day},
		{"2days", 2 * day},
		{"5h 3s", 5*time.Hour + 3*time.Second},
		{"1day 2hours 3minute 4seconds", day + 2*time.Hour + 3*time.Minute + 4*time.Second},
		{"1d2h3m4s", day + 2*time.Hour + 3*time.Minute + 4*time.Second},
		{" 1 d  2 h 3 m 4 s ", day + 2*time.Hour + 3*time.Minute + 4*time.Second},
		{"1hour", time.Hour},
		{"90minutes", 90 * time.Minute},
		{"1minute", time.Minute},
		{"1m", time.Minute},
		{"1second", time.Second},
		{"0d 5s", 5 * time.Second},
		{"3650d", Max},
		{"315360000", Max},
		{"3649d 24h", Max},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `invalid TTL "": empty`},
		{"   ", `invalid TTL "   ": empty`},
		{"0", `invalid TTL "0": must be at least one second`},
		{"0d 0h 0m 0s", `invalid TTL "0d 0h 0m 0s": must be at least one second`},
		{"-1", `invalid TTL "-1": expected a number at offset 0`},
		{"+1", `invalid TTL "+1": expected a number at offset 0`},
		{"1d -1h", `invalid TTL "1d -1h": expected a number at offset 3`},
		{"d", `invalid TTL "d": expected a number at offset 0`},
		{"1.5h", `invalid TTL "1.5h": expected a unit after "1"`},
		{"1x", `invalid TTL "1x": unknown unit "x" (want d, h, m or s)`},
		{"1D", `invalid TTL "1D": expected a unit after "1"`},
		{"1dayss", `invalid TTL "1dayss": unknown unit "dayss" (want d, h, m or s)`},
		{"1w", `invalid TTL "1w": unknown unit "w" (want d, h, m or s)`},
		{"1ms", `invalid TTL "1ms": unknown unit "ms" (want d, h, m or s)`},
		{"1s 1d", `invalid TTL "1s 1d": unit "d" out of order or repeated (order is days, hours, minutes, seconds)`},
		{"1h 2h", `invalid TTL "1h 2h": unit "h" out of order or repeated (order is days, hours, minutes, seconds)`},
		{"1d 1day", `invalid TTL "1d 1day": unit "day" out of order or repeated (order is days, hours, minutes, seconds)`},
		{"1d 5", `invalid TTL "1d 5": expected a unit after "5"`},
		{"10 5", `invalid TTL "10 5": expected a unit after "10"`},
		{"1d,2h", `invalid TTL "1d,2h": expected a number at offset 2`},
		{"1d\n", `invalid TTL "1d\n": expected a number at offset 2`},
		{"１d", `invalid TTL "１d": expected a number at offset 0`},
		{"3651d", `invalid TTL "3651d": longer than the maximum of 3650 days`},
		{"315360001", `invalid TTL "315360001": longer than the maximum of 3650 days`},
		{"3650d 1s", `invalid TTL "3650d 1s": longer than the maximum of 3650 days`},
		{"99999999999999999999999", `invalid TTL "99999999999999999999999": longer than the maximum of 3650 days`},
		{"9223372036854775807s", `invalid TTL "9223372036854775807s": longer than the maximum of 3650 days`},
		{"3000d 3000d", `invalid TTL "3000d 3000d": unit "d" out of order or repeated (order is days, hours, minutes, seconds)`},
		{"3000d 80000h 1s", `invalid TTL "3000d 80000h 1s": longer than the maximum of 3650 days`},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want error %q", tt.in, got, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Parse(%q) error\n got: %s\nwant: %s", tt.in, err, tt.want)
		}
	}
}

func TestSeconds(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{time.Second, "1"},
		{90 * time.Second, "90"},
		{90*time.Second + time.Nanosecond, "91"},
		{time.Millisecond, "1"},
		{0, "1"},
		{-time.Hour, "1"},
		{Max, "315360000"},
	}
	for _, tt := range tests {
		if got := Seconds(tt.in); got != tt.want {
			t.Errorf("Seconds(%v) = %q, want %q", tt.in, got, tt.want)
		}
		// What Seconds writes, Parse reads back (within bounds).
		if tt.in > 0 && tt.in <= Max {
			d, err := Parse(Seconds(tt.in))
			if err != nil || d < tt.in || d-tt.in >= time.Second {
				t.Errorf("Parse(Seconds(%v)) = %v, %v", tt.in, d, err)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"1", " 10 ", "1day 2hours 3minute 4seconds", "5h 3s", "1d", "0", "-1", "1s 1d",
		"99999999999999999999999", "3650d", "1d 1day", "1 d 2 h", "x", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("Parse(%q): error %q does not quote the input", s, err)
			}
			return
		}
		if d < time.Second || d > Max || d%time.Second != 0 {
			t.Fatalf("Parse(%q) = %v: out of range", s, d)
		}
		// Seconds gives a form Parse reads back to the same value.
		if d2, err := Parse(Seconds(d)); err != nil || d2 != d {
			t.Fatalf("Parse(Seconds(%v)) = %v, %v", d, d2, err)
		}
	})
}
