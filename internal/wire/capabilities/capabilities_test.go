package capabilities

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keel-relay/keel/internal/wire/edgepb"
)

func TestCheck(t *testing.T) {
	long := strings.Repeat("x", MaxStringSize+1)
	atMost := strings.Repeat("x", MaxStringSize)
	list := func(n int) []string {
		l := make([]string, n)
		for i := range l {
			l[i] = fmt.Sprint("item", i)
		}
		return l
	}
	labels := func(n int, val string) map[string]string {
		m := make(map[string]string, n)
		for i := range n {
			m[fmt.Sprint("k", i)] = val
		}
		return m
	}
	for _, tc := range []struct {
		name string
		caps *edgepb.EdgeCapabilities
		msg  string // "" = accepted
	}{
		{"nil", nil, ""},
		{"empty", &edgepb.EdgeCapabilities{}, ""},
		{"typical", &edgepb.EdgeCapabilities{Os: "linux", Arch: "arm64", LocalTools: []string{"agent-run", "shell"},
			MountPoints: []string{"/", "/var"}, CustomLabels: map[string]string{"site": "paris"}}, ""},
		{"strings at their bound", &edgepb.EdgeCapabilities{Os: atMost, Arch: atMost, LocalTools: []string{atMost}}, ""},
		{"lists at their bound", &edgepb.EdgeCapabilities{LocalTools: list(MaxItems)}, ""},
		{"long os", &edgepb.EdgeCapabilities{Os: long}, "os is 257 bytes, at most 256"},
		{"long arch", &edgepb.EdgeCapabilities{Arch: long}, "arch is 257 bytes, at most 256"},
		{"long tool", &edgepb.EdgeCapabilities{LocalTools: []string{"a", long}}, "local_tools[1] is 257 bytes, at most 256"},
		{"long mount point", &edgepb.EdgeCapabilities{MountPoints: []string{long}}, "mount_points[0] is 257 bytes, at most 256"},
		{"long label key", &edgepb.EdgeCapabilities{CustomLabels: map[string]string{long: "v"}}, "a custom_labels key is 257 bytes, at most 256"},
		{"long label value", &edgepb.EdgeCapabilities{CustomLabels: map[string]string{"site": long}}, `custom_labels["site"] is 257 bytes, at most 256`},
		{"too many tools", &edgepb.EdgeCapabilities{LocalTools: list(MaxItems + 1)}, "local_tools has 65 entries, at most 64"},
		{"too many mount points", &edgepb.EdgeCapabilities{MountPoints: list(MaxItems + 1)}, "mount_points has 65 entries, at most 64"},
		{"too many labels", &edgepb.EdgeCapabilities{CustomLabels: labels(MaxItems+1, "v")}, "custom_labels has 65 entries, at most 64"},
		{"each within bounds, too large together", &edgepb.EdgeCapabilities{CustomLabels: labels(32, atMost)}, "bytes encoded, at most 4096"},
		{"the 4 MB of the report", &edgepb.EdgeCapabilities{Os: strings.Repeat("x", 4<<20)}, "os is 4194304 bytes, at most 256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.caps)
			switch {
			case tc.msg == "" && err != nil:
				t.Fatalf("Check = %v, want nil", err)
			case tc.msg != "" && (!errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.msg)):
				t.Fatalf("Check = %v, want ErrTooLarge naming %q", err, tc.msg)
			}
		})
	}
}
