package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ByteSize is a size in bytes, written in the config as a whole number with an
// optional unit: "1048576", "512KiB", "64 MiB", "1GiB" (binary) or "10MB" (decimal).
type ByteSize int64

// Binary size units.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
)

// unitMultiplier returns the multiplier of a lower-cased size unit.
func unitMultiplier(unit string) (int64, bool) {
	switch unit {
	case "", "b":
		return 1, true
	case "kib":
		return 1 << 10, true
	case "mib":
		return 1 << 20, true
	case "gib":
		return 1 << 30, true
	case "tib":
		return 1 << 40, true
	case "kb":
		return 1e3, true
	case "mb":
		return 1e6, true
	case "gb":
		return 1e9, true
	case "tb":
		return 1e12, true
	}
	return 0, false
}

// ParseByteSize parses a size such as "256MiB", "64 MiB", "4KiB", "10MB" (10^6 bytes)
// or "1048576". Units are case-insensitive; the number must be a non-negative integer.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		if strings.HasPrefix(t, "-") {
			return 0, fmt.Errorf("invalid size %q: must not be negative", s)
		}
		return 0, fmt.Errorf("invalid size %q: want a whole number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)", s)
	}
	unit := strings.TrimSpace(t[i:])
	mult, ok := unitMultiplier(strings.ToLower(unit))
	if !ok || strings.ContainsFunc(unit, func(r rune) bool { return r >= utf8.RuneSelf }) {
		return 0, fmt.Errorf("invalid size %+q: unknown unit %+q (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", s, unit)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return ByteSize(n * mult), nil
}

// AutoByteSize is a ByteSize, or the word "auto" (Auto): a size the relay works out by
// itself unless the config gives one.
type AutoByteSize int64

// Auto is the AutoByteSize written "auto".
const Auto AutoByteSize = -1

// ParseAutoByteSize parses "auto" (in any case, spaces around allowed) or a size as
// ParseByteSize does.
func ParseAutoByteSize(s string) (AutoByteSize, error) {
	if strings.EqualFold(strings.TrimSpace(s), "auto") {
		return Auto, nil
	}
	n, err := ParseByteSize(s)
	if err != nil {
		return 0, fmt.Errorf("%w, or auto", err)
	}
	return AutoByteSize(n), nil
}

// String formats the size as ByteSize does, or "auto"; ParseAutoByteSize reads it back.
func (a AutoByteSize) String() string {
	if a == Auto {
		return "auto"
	}
	return ByteSize(a).String()
}

// String formats the size with the largest binary unit that divides it exactly,
// e.g. "256MiB", "4KiB", or "1000B"; ParseByteSize reads it back.
func (b ByteSize) String() string {
	if b != 0 {
		for _, u := range []struct {
			size ByteSize
			name string
		}{{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
			if b%u.size == 0 {
				return strconv.FormatInt(int64(b/u.size), 10) + u.name
			}
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}
