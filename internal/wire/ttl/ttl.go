// Package ttl parses and formats the time-to-live of a shared file, in the
// grammar Rudder agents and servers use: a bare number of seconds, or up to
// four parts in the order days, hours, minutes, seconds, such as
// "1day 2hours 3minute 4seconds", "5h 3s" or "1d".
package ttl

import (
	"fmt"
	"strconv"
	"time"
)

// Max is the longest TTL accepted: 10 years (of 365 days).
const Max = 10 * 365 * 24 * time.Hour

// Parse parses a TTL. A bare integer is a number of seconds; otherwise s holds
// one to four parts "<n><unit>", in the order days, hours, minutes, seconds,
// each at most once, with optional spaces or tabs between and around them.
// Units are d|day|days, h|hour|hours, m|minute|minutes and s|second|seconds.
// A TTL that is zero or longer than Max is refused.
func Parse(s string) (time.Duration, error) {
	d, err := parse(s)
	if err != nil {
		return 0, fmt.Errorf("invalid TTL %q: %w", s, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("invalid TTL %q: must be at least one second", s)
	}
	if d > Max {
		return 0, fmt.Errorf("invalid TTL %q: longer than the maximum of %d days", s, Max/(24*time.Hour))
	}
	return d, nil
}

// parse does the work of Parse without the bounds checks, returning errors
// that do not repeat the input. Any total beyond Max is reported as such
// rather than overflowing.
func parse(s string) (time.Duration, error) {
	i := skipSpace(s, 0)
	if i == len(s) {
		return 0, fmt.Errorf("empty")
	}
	var total time.Duration
	next := 0 // index in units of the first unit still allowed
	parts := 0
	for i < len(s) {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return 0, fmt.Errorf("expected a number at offset %d", start)
		}
		num := s[start:i]
		i = skipSpace(s, i)
		wstart := i
		for i < len(s) && s[i] >= 'a' && s[i] <= 'z' {
			i++
		}
		word := s[wstart:i]
		if word == "" {
			if i == len(s) && parts == 0 {
				// A bare integer: seconds.
				return scale(num, time.Second), nil
			}
			return 0, fmt.Errorf("expected a unit after %q", num)
		}
		u, unit := unitOf(word)
		if u < 0 {
			return 0, fmt.Errorf("unknown unit %q (want d, h, m or s)", word)
		}
		if u < next {
			return 0, fmt.Errorf("unit %q out of order or repeated (order is days, hours, minutes, seconds)", word)
		}
		next = u + 1
		parts++
		total += scale(num, unit) // both at most Max+1: no overflow
		if total > Max {
			total = Max + 1
		}
		i = skipSpace(s, i)
	}
	return total, nil
}

// scale returns num (a non-empty string of ASCII digits) times unit, or
// Max+1 when that exceeds Max.
func scale(num string, unit time.Duration) time.Duration {
	n, err := strconv.ParseUint(num, 10, 64) // only fails on overflow
	if err != nil || n > uint64(Max/unit) {
		return Max + 1
	}
	return time.Duration(n) * unit
}

// unitOf returns the position of the unit named word in the order days,
// hours, minutes, seconds, and its length; -1 if word names no unit.
func unitOf(word string) (int, time.Duration) {
	switch word {
	case "d", "day", "days":
		return 0, 24 * time.Hour
	case "h", "hour", "hours":
		return 1, time.Hour
	case "m", "minute", "minutes":
		return 2, time.Minute
	case "s", "second", "seconds":
		return 3, time.Second
	}
	return -1, 0
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// Seconds formats d as a bare integer number of whole seconds, rounded up and
// at least 1, as sent in "?ttl=<seconds>" when a file is forwarded with what
// remains of its TTL.
func Seconds(d time.Duration) string {
	s := int64(d / time.Second)
	if d%time.Second > 0 {
		s++
	}
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}
