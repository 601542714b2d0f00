package membudget

import (
	"reflect"
	"testing"
)

// defaults are the settings of the packaged default configuration (relay/config/default.yaml).
var defaults = Settings{
	MemTableSize: 8 << 20, NumMemtables: 2, BlockCacheSize: 8 << 20, IndexCacheSize: 4 << 20,
	ValueThreshold: 4 << 10, ChunkSize: 256 << 10, UploadSlots: 64, APIConnections: 1024, EdgeStreams: 20000,
	RemoteRunCalls: 8, RemoteRunOutputLines: 256,
}

func TestSplit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name    string
		budget  int64
		goLimit int64
		want    Settings
	}{
		{"none", 0, 0, defaults},
		{"32MiB", 32 * mib, 24 * mib, Settings{MemTableSize: 2 * mib, NumMemtables: 2, BlockCacheSize: 1 * mib, IndexCacheSize: 1 * mib,
			ValueThreshold: 4 << 10, ChunkSize: 256 << 10, UploadSlots: 7, APIConnections: 64, EdgeStreams: 44, EdgeConnections: 66, RemoteRunCalls: 2, RemoteRunOutputLines: 11}},
		{"64MiB", 64 * mib, 48 * mib, Settings{MemTableSize: 2 * mib, NumMemtables: 2, BlockCacheSize: 2 * mib, IndexCacheSize: 1 * mib,
			ValueThreshold: 4 << 10, ChunkSize: 256 << 10, UploadSlots: 19, APIConnections: 64, EdgeStreams: 121, EdgeConnections: 181, RemoteRunCalls: 7, RemoteRunOutputLines: 8}},
		{"128MiB", 128 * mib, 96 * mib, Settings{MemTableSize: 4 * mib, NumMemtables: 2, BlockCacheSize: 6 * mib, IndexCacheSize: 3 * mib,
			ValueThreshold: 4 << 10, ChunkSize: 256 << 10, UploadSlots: 43, APIConnections: 137, EdgeStreams: 275, EdgeConnections: 412, RemoteRunCalls: 8, RemoteRunOutputLines: 17}},
		{"256MiB", 256 * mib, 192 * mib, Settings{MemTableSize: 8 * mib, NumMemtables: 2, BlockCacheSize: 8 * mib, IndexCacheSize: 4 * mib,
			ValueThreshold: 4 << 10, ChunkSize: 256 << 10, UploadSlots: 64, APIConnections: 291, EdgeStreams: 582, EdgeConnections: 873, RemoteRunCalls: 8, RemoteRunOutputLines: 36}},
		{"1GiB", 1024 * mib, 768 * mib, Settings{MemTableSize: 8 * mib, NumMemtables: 2, BlockCacheSize: 8 * mib, IndexCacheSize: 4 * mib,
			ValueThreshold: 4 << 10, ChunkSize: 256 << 10, UploadSlots: 64, APIConnections: 1024, EdgeStreams: 2425, EdgeConnections: 3637, RemoteRunCalls: 8, RemoteRunOutputLines: 151}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Split(Budget{Bytes: tc.budget, Source: "test"}, defaults)
			if p.GoLimit != tc.goLimit {
				t.Errorf("GoLimit %s, want %s", FormatBytes(p.GoLimit), FormatBytes(tc.goLimit))
			}
			if p.NearAt != tc.goLimit*NearPercent/100 {
				t.Errorf("NearAt %d", p.NearAt)
			}
			if tc.budget > 0 && p.EdgeConnections < p.EdgeStreams+MinEdgeConnMargin {
				t.Errorf("edge connections %d leave less than %d for connections without a stream (%d streams)", p.EdgeConnections, MinEdgeConnMargin, p.EdgeStreams)
			}
			if !reflect.DeepEqual(p.Settings, tc.want) {
				t.Errorf("settings\n%+v, want\n%+v", p.Settings, tc.want)
			}
			if tc.budget > 0 {
				// What the plan counts must fit the Go limit.
				counted := BaseReserve + int64(p.NumMemtables+1)*p.MemTableSize + p.BlockCacheSize + p.IndexCacheSize +
					int64(p.APIConnections)*ConnCost +
					int64(p.UploadSlots)*p.UploadCost + int64(p.EdgeStreams)*StreamCost + int64(p.EdgeConnections-p.EdgeStreams)*ConnCost +
					int64(p.RemoteRunCalls*p.RemoteRunOutputLines)*RemoteRunMaxLine
				if tc.budget >= 64*mib && counted > p.GoLimit {
					t.Errorf("the plan counts %s, more than the Go limit %s", FormatBytes(counted), FormatBytes(p.GoLimit))
				}
				t.Logf("%s: %s; counted %s; lowered %v", tc.name, p, FormatBytes(counted), p.Lowered)
			}
		})
	}
}

// TestSplitNeverRaises: settings configured below the budget's share stay as they are.
func TestSplitNeverRaises(t *testing.T) {
	small := Settings{MemTableSize: 1 << 20, NumMemtables: 1, BlockCacheSize: 1 << 20, IndexCacheSize: 1 << 20,
		ValueThreshold: 1 << 10, ChunkSize: 64 << 10, UploadSlots: 1, EdgeStreams: 1, EdgeConnections: 1, RemoteRunCalls: 1, RemoteRunOutputLines: 1}
	for _, b := range []int64{32 << 20, 64 << 20, 1 << 30, 0} {
		p := Split(Budget{Bytes: b}, small)
		if p.Settings != small || len(p.Lowered) != 0 {
			t.Errorf("budget %s: %+v (lowered %v), want %+v", FormatBytes(b), p.Settings, p.Lowered, small)
		}
	}
}

// TestSplitKeepsValueThreshold: the memtable is not lowered below what value_threshold needs.
func TestSplitKeepsValueThreshold(t *testing.T) {
	s := defaults
	s.ValueThreshold, s.ChunkSize = 1<<20, 4<<20
	p := Split(Budget{Bytes: 64 << 20}, s)
	if p.MemTableSize*15/100 < s.ValueThreshold {
		t.Errorf("memtable %s is too small for value_threshold %s", FormatBytes(p.MemTableSize), FormatBytes(s.ValueThreshold))
	}
	if p.MemTableSize > s.MemTableSize {
		t.Errorf("memtable raised to %s", FormatBytes(p.MemTableSize))
	}
}

func TestResolve(t *testing.T) {
	cg := Limit{Bytes: 128 << 20, Source: "cgroup v2 /x/memory.max"}
	for _, tc := range []struct {
		name       string
		configured int64
		detected   Limit
		want       Budget
		warns      bool
	}{
		{"auto, cgroup", -1, cg, Budget{128 << 20, "cgroup v2 /x/memory.max"}, false},
		{"auto, nothing", -1, Limit{Source: "none"}, Budget{0, "none"}, false},
		{"configured below the cgroup", 64 << 20, cg, Budget{64 << 20, "memory.limit"}, false},
		{"configured equal", 128 << 20, cg, Budget{128 << 20, "memory.limit"}, false},
		{"configured above the cgroup", 256 << 20, cg, Budget{128 << 20, "cgroup v2 /x/memory.max"}, true},
		{"configured, nothing detected", 256 << 20, Limit{Source: "none"}, Budget{256 << 20, "memory.limit"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, warning := Resolve(tc.configured, tc.detected)
			if got != tc.want || (warning != "") != tc.warns {
				t.Errorf("Resolve = %+v, %q; want %+v, warning %v", got, warning, tc.want, tc.warns)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	for in, want := range map[int64]string{0: "0B", 1023: "1023B", 1024: "1KiB", 1536: "1.5KiB", 64 << 20: "64MiB", 3 << 30: "3GiB", 1 << 40: "1TiB"} {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}

// TestSplitEdgeConnections: the edge connections are the effective streams and the margin
// for connections without a stream, whether the streams were lowered or configured below
// the budget's share.
func TestSplitEdgeConnections(t *testing.T) {
	for _, tc := range []struct {
		name          string
		budget        int64
		streams       int
		wantStreams   int
		wantConnCount int
	}{
		{"64MiB, lowered", 64 << 20, 20000, 121, 181},
		{"64MiB, configured below", 64 << 20, 10, 10, 70},
		{"32MiB, configured 1", 32 << 20, 1, 1, 23},
		{"no budget: no bound", 0, 20000, 20000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := defaults
			s.EdgeStreams = tc.streams
			p := Split(Budget{Bytes: tc.budget}, s)
			if p.EdgeStreams != tc.wantStreams || p.EdgeConnections != tc.wantConnCount {
				t.Errorf("streams %d, connections %d; want %d, %d", p.EdgeStreams, p.EdgeConnections, tc.wantStreams, tc.wantConnCount)
			}
		})
	}
}
