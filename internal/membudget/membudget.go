// Package membudget finds the memory budget the relay runs under (a cgroup limit, the
// machine's RAM, or the memory.limit config key), splits it among the relay's parts (the Go
// memory limit, Badger's memtables and caches, upload slots, edge streams, remote-run
// buffers) and tells, cheaply, when the process is near it (Gauge), so that new work is
// refused before the kernel's OOM killer steps in.
//
// It depends on no relay package: the relay and the edge server both use it.
package membudget

import (
	"fmt"
	"strings"
)

// Budget is the memory the relay may use, and where that figure comes from.
type Budget struct {
	// Bytes is the budget; 0 means no limit is known (nothing is lowered).
	Bytes int64
	// Source: "memory.limit" (the config), or a Limit's Source.
	Source string
}

// Resolve returns the budget of a process whose config says configured (a size, or a
// negative value for "auto") and that runs under detected. A configured size wins, but
// cannot exceed a detected limit: then the detected limit is used and warning says so.
func Resolve(configured int64, detected Limit) (b Budget, warning string) {
	if configured < 0 {
		if detected.Bytes <= 0 {
			return Budget{Source: "none"}, ""
		}
		return Budget(detected), ""
	}
	if detected.Bytes > 0 && configured > detected.Bytes {
		return Budget(detected),
			fmt.Sprintf("memory.limit (%s) is more than the process may use (%s, %s): using the latter",
				FormatBytes(configured), FormatBytes(detected.Bytes), detected.Source)
	}
	return Budget{Bytes: configured, Source: "memory.limit"}, ""
}

// FormatBytes writes a size in the largest binary unit that keeps it readable: "64MiB",
// "1.5GiB", "900KiB", "12B".
func FormatBytes(n int64) string {
	units := []struct {
		size int64
		name string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}}
	for _, u := range units {
		if n >= u.size || -n >= u.size {
			s := fmt.Sprintf("%.1f", float64(n)/float64(u.size))
			return strings.TrimSuffix(s, ".0") + u.name
		}
	}
	return fmt.Sprintf("%dB", n)
}
