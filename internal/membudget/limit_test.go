package membudget

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree writes files (path relative to the fake root -> content) under a new temp dir.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const (
	meminfo1G    = "MemTotal:        1048576 kB\nMemFree:          524288 kB\n"
	mountsV1     = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
	mountsV2     = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
	cgroupV1     = "4:memory:/system.slice/keel-relay.service\n1:cpu:/\n0::/\n"
	cgroupV2     = "0::/system.slice/keel-relay.service\n"
	unlimitedV1s = "9223372036854771712\n"
)

func TestReadLimit(t *testing.T) {
	v1dir := "sys/fs/cgroup/memory/system.slice/keel-relay.service/"
	v2dir := "sys/fs/cgroup/system.slice/keel-relay.service/"
	for _, tc := range []struct {
		name    string
		files   map[string]string
		want    Limit
		wantErr string // substring; "" = no error
	}{
		{"nothing (not Linux)", nil, Limit{Source: "none"}, ""},
		{"meminfo only", map[string]string{"proc/meminfo": meminfo1G}, Limit{Bytes: 1 << 30, Source: "MemTotal"}, ""},
		{"v2 limit", map[string]string{
			"proc/meminfo": meminfo1G, "proc/self/cgroup": cgroupV2, "proc/self/mountinfo": mountsV2,
			v2dir + "memory.max": "134217728\n", "sys/fs/cgroup/system.slice/memory.max": "max\n",
		}, Limit{Bytes: 128 << 20, Source: "cgroup v2 /sys/fs/cgroup/system.slice/keel-relay.service/memory.max"}, ""},
		{"v2 parent smaller", map[string]string{
			"proc/meminfo": meminfo1G, "proc/self/cgroup": cgroupV2, "proc/self/mountinfo": mountsV2,
			v2dir + "memory.max": "max\n", "sys/fs/cgroup/system.slice/memory.max": "67108864\n",
		}, Limit{Bytes: 64 << 20, Source: "cgroup v2 /sys/fs/cgroup/system.slice/memory.max"}, ""},
		{"v2 unlimited", map[string]string{
			"proc/meminfo": meminfo1G, "proc/self/cgroup": cgroupV2, "proc/self/mountinfo": mountsV2,
			v2dir + "memory.max": "max\n",
		}, Limit{Bytes: 1 << 30, Source: "MemTotal"}, ""},
		{"v2 without the memory controller", map[string]string{
			"proc/meminfo": meminfo1G, "proc/self/cgroup": cgroupV2, "proc/self/mountinfo": mountsV2,
		}, Limit{Bytes: 1 << 30, Source: "MemTotal"}, ""},
		{"v2 above MemTotal", map[string]string{
			"proc/meminfo": meminfo1G, "proc/self/cgroup": cgroupV2, "proc/self/mountinfo": mountsV2,
			v2dir + "memory.max": "4294967296\n",
		}, Limit{Bytes: 1 << 30, Source: "MemTotal"}, ""},
		{"v1 limit", map[string]string{
			"proc/meminfo": meminfo1G, "proc/self/cgroup": cgroupV1, "proc/self/mountinfo": mountsV1,
			v1dir + "memory.limit_in_bytes": "100663296\n", "sys/fs/cgroup/memory/memory.limit_in_bytes": unlimitedV1s,
		}, Limit{Bytes: 96 << 20, Source: "cgroup v1 /sys/fs/cgroup/memory/system.slice/keel-relay.service/memory.limit_in_bytes"}, ""},
		{"v1 parent smaller", map[string]string{
			"proc/meminfo": meminfo1G, "proc/self/cgroup": cgroupV1, "proc/self/mountinfo": mountsV1,
			v1dir + "memory.limit_in_bytes": unlimitedV1s, "sys/fs/cgroup/memory/system.slice/memory.limit_in_bytes": "268435456",
		}, Limit{Bytes: 256 << 20, Source: "cgroup v1 /sys/fs/cgroup/memory/system.slice/memory.limit_in_bytes"}, ""},
		{"v1 unlimited", map[string]string{
			"proc/meminfo": meminfo1G, "proc/self/cgroup": cgroupV1, "proc/self/mountinfo": mountsV1,
			v1dir + "memory.limit_in_bytes": unlimitedV1s, "sys/fs/cgroup/memory/memory.limit_in_bytes": unlimitedV1s,
		}, Limit{Bytes: 1 << 30, Source: "MemTotal"}, ""},
		{"v1 in a namespace (mount root is the cgroup)", map[string]string{
			"proc/meminfo": meminfo1G, "proc/self/cgroup": "4:memory:/docker/abc\n",
			"proc/self/mountinfo":                        "35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "33554432",
		}, Limit{Bytes: 32 << 20, Source: "cgroup v1 /sys/fs/cgroup/memory/memory.limit_in_bytes"}, ""},
		{"v1 cgroup outside the mount", map[string]string{
			"proc/meminfo": meminfo1G, "proc/self/cgroup": "4:memory:/other\n",
			"proc/self/mountinfo":                        "35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "33554432",
		}, Limit{Bytes: 1 << 30, Source: "MemTotal"}, ""},
		{"hybrid: v1 and v2, smallest wins", map[string]string{
			"proc/meminfo": meminfo1G, "proc/self/cgroup": "4:memory:/a\n0::/b\n",
			"proc/self/mountinfo": mountsV1, "sys/fs/cgroup/memory/a/memory.limit_in_bytes": "200000000",
			"sys/fs/cgroup/unified/b/memory.max": "100000000",
		}, Limit{Bytes: 100000000, Source: "cgroup v2 /sys/fs/cgroup/unified/b/memory.max"}, ""},
		{"garbage limit file", map[string]string{
			"proc/meminfo": meminfo1G, "proc/self/cgroup": cgroupV2, "proc/self/mountinfo": mountsV2,
			v2dir + "memory.max": "lots\n", "sys/fs/cgroup/system.slice/memory.max": "67108864\n",
		}, Limit{Bytes: 64 << 20, Source: "cgroup v2 /sys/fs/cgroup/system.slice/memory.max"}, `keel-relay.service/memory.max: "lots" is not a number of bytes or "max"`},
		{"zero limit", map[string]string{
			"proc/meminfo": meminfo1G, "proc/self/cgroup": cgroupV2, "proc/self/mountinfo": mountsV2, v2dir + "memory.max": "0",
		}, Limit{Bytes: 1 << 30, Source: "MemTotal"}, "a limit of 0 bytes"},
		{"garbage cgroup file", map[string]string{"proc/meminfo": meminfo1G, "proc/self/cgroup": "hello\n"},
			Limit{Bytes: 1 << 30, Source: "MemTotal"}, `proc/self/cgroup: line 1 "hello" is not id:controllers:/path`},
		{"garbage mountinfo", map[string]string{"proc/meminfo": meminfo1G, "proc/self/cgroup": cgroupV2, "proc/self/mountinfo": "x y\n"},
			Limit{Bytes: 1 << 30, Source: "MemTotal"}, `mountinfo: line 1 "x y" is not a mountinfo line`},
		{"garbage meminfo", map[string]string{"proc/meminfo": "MemTotal: many kB\n"}, Limit{Source: "none"}, `MemTotal "many" is not a positive number of kB`},
		{"meminfo without MemTotal", map[string]string{"proc/meminfo": "MemFree: 1 kB\n"}, Limit{Source: "none"}, "no MemTotal line"},
		{"no mountinfo", map[string]string{"proc/meminfo": meminfo1G, "proc/self/cgroup": cgroupV2}, Limit{Bytes: 1 << 30, Source: "MemTotal"}, ""},
		{"limit file is a directory", map[string]string{
			"proc/self/cgroup": cgroupV2, "proc/self/mountinfo": mountsV2, v2dir + "memory.max/x": "",
		}, Limit{Source: "none"}, "memory.max"},
		{"huge file", map[string]string{"proc/meminfo": strings.Repeat("x", maxReadSize+1)}, Limit{Source: "none"}, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadLimit(tree(t, tc.files))
			if got != tc.want {
				t.Errorf("limit %+v, want %+v", got, tc.want)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one with %q", err, tc.wantErr)
			}
		})
	}
}

// TestReadLimitHere reads this machine's limit: it must not fail, and is at most MemTotal.
func TestReadLimitHere(t *testing.T) {
	l, err := ReadLimit("")
	if err != nil {
		t.Fatalf("ReadLimit: %v (got %+v)", err, l)
	}
	t.Logf("this process's memory limit: %s (%s)", FormatBytes(l.Bytes), l.Source)
}

func TestParseLimitValue(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"max\n", 0, false}, {"134217728\n", 128 << 20, false}, {" 4096 ", 4096, false},
		{"9223372036854771712", 0, false}, {"9223372036854775807", 0, false}, {"18446744073709551615", 0, false},
		{"1152921504606846976", 0, false}, {"1152921504606846975", 1<<60 - 1, false},
		{"", 0, true}, {"0", 0, true}, {"-1", 0, true}, {"12k", 0, true}, {"max max", 0, true},
		{"18446744073709551616", 0, true}, {"0x10", 0, true},
	} {
		got, err := parseLimitValue([]byte(tc.in))
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("parseLimitValue(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseCgroup(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{cgroupV1, map[string]string{"memory": "/system.slice/keel-relay.service", "": "/"}, false},
		{cgroupV2, map[string]string{"": "/system.slice/keel-relay.service"}, false},
		{"7:cpu,memory:/a\n", map[string]string{"memory": "/a"}, false},
		{"1:name=systemd:/x\n", map[string]string{}, false},
		{"", map[string]string{}, false},
		{"0::relative\n", nil, true}, {"x::/a\n", nil, true}, {":memory:/a\n", nil, true}, {"4:memory\n", nil, true},
	} {
		got, err := parseCgroup([]byte(tc.in))
		if (err != nil) != tc.wantErr || (!tc.wantErr && !maps.Equal(got, tc.want)) {
			t.Errorf("parseCgroup(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseMountInfo(t *testing.T) {
	got, err := parseMountInfo([]byte(mountsV1 + "50 31 0:40 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n22 1 8:1 / / rw - ext4 /dev/sda1 rw\n33 31 0:30 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []mount{{"/", "/sys/fs/cgroup/memory", false}, {"/", "/sys/fs/cgroup/unified", true}, {"/", "/mnt/with space", true}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mount %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"1 2 3\n", "1 2 3 4 5 6 - \n", "1 2 0:1 rel /x rw - cgroup2 c rw\n"} {
		if _, err := parseMountInfo([]byte(bad)); err == nil {
			t.Errorf("parseMountInfo(%q) accepted", bad)
		}
	}
}

func TestParseMemInfo(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{meminfo1G, 1 << 30, false}, {"MemTotal: 4 kB", 4096, false},
		{"MemTotal: 4 MB\n", 0, true}, {"MemTotal: 0 kB\n", 0, true}, {"MemTotal: -4 kB\n", 0, true},
		{"MemTotal: 9223372036854775807 kB\n", 0, true}, {"MemTotal:\n", 0, true}, {"", 0, true},
	} {
		got, err := parseMemInfo([]byte(tc.in))
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("parseMemInfo(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// FuzzParsers feeds the same bytes to every parser of system files: none may panic, and what
// they return must be sane.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{meminfo1G, mountsV1, mountsV2, cgroupV1, cgroupV2, unlimitedV1s, "max\n", "0::/\n", `1 2 0:3 / /a\0401 - cgroup2 x y`, "\\"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if n, err := parseLimitValue(data); n < 0 || (err != nil && n != 0) {
			t.Errorf("parseLimitValue: %d, %v", n, err)
		}
		if n, err := parseMemInfo(data); n < 0 || (err == nil && n == 0) {
			t.Errorf("parseMemInfo: %d, %v", n, err)
		}
		if g, err := parseCgroup(data); err == nil {
			for _, p := range g {
				if !strings.HasPrefix(p, "/") {
					t.Errorf("parseCgroup: relative path %q", p)
				}
			}
		}
		if ms, err := parseMountInfo(data); err == nil {
			for _, m := range ms {
				if d, ok := m.dirOf("/x/y"); ok && !strings.HasPrefix(d, m.point) {
					t.Errorf("dirOf: %q outside %q", d, m.point)
				}
			}
		}
		_ = unescapeMount(string(data))
	})
}
