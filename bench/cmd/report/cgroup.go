//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// memCgroup is a memory cgroup the benchmark made for a relay to run in, on the v1 memory
// hierarchy or on a v2 (unified) hierarchy with the memory controller.
type memCgroup struct {
	dir string
	v2  bool
	// swap says how swap was kept out of the cgroup, in words, for the report.
	swap string
}

// newMemCgroup makes the cgroup name under the memory hierarchy with a limit of limit bytes,
// swap included where the kernel accounts swap. It fails, saying why, where this process
// cannot make one (not root, no memory controller mounted).
func newMemCgroup(name string, limit int64) (*memCgroup, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("memory cgroup: not root (euid %d)", os.Geteuid())
	}
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil, fmt.Errorf("memory cgroup: %w", err)
	}
	v1, v2s, err := parseCgroupMounts(string(mounts))
	if err != nil {
		return nil, fmt.Errorf("memory cgroup: /proc/self/mounts: %w", err)
	}
	lim := strconv.FormatInt(limit, 10)
	if v1 != "" {
		c := &memCgroup{dir: filepath.Join(v1, name)}
		if err := os.Mkdir(c.dir, 0o755); err != nil {
			return nil, fmt.Errorf("memory cgroup v1: %w", err)
		}
		if err := c.write("memory.limit_in_bytes", lim); err != nil {
			return nil, errors.Join(err, c.remove())
		}
		c.swap = "memory.memsw.limit_in_bytes = memory.limit_in_bytes (no swap use)"
		if _, err := os.Stat(filepath.Join(c.dir, "memory.memsw.limit_in_bytes")); err != nil {
			c.swap = "no memory.memsw.limit_in_bytes (swap accounting off): swap not limited by the cgroup"
		} else if err := c.write("memory.memsw.limit_in_bytes", lim); err != nil {
			return nil, errors.Join(err, c.remove())
		}
		return c, nil
	}
	for _, root := range v2s {
		if !hasWord(root, "cgroup.controllers", "memory") {
			continue
		}
		if !hasWord(root, "cgroup.subtree_control", "memory") {
			if err := os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("+memory"), 0); err != nil {
				return nil, fmt.Errorf("memory cgroup v2: enable the memory controller under %s: %w", root, err)
			}
		}
		c := &memCgroup{dir: filepath.Join(root, name), v2: true}
		if err := os.Mkdir(c.dir, 0o755); err != nil {
			return nil, fmt.Errorf("memory cgroup v2: %w", err)
		}
		if err := c.write("memory.max", lim); err != nil {
			return nil, errors.Join(err, c.remove())
		}
		c.swap = "memory.swap.max = 0"
		if _, err := os.Stat(filepath.Join(c.dir, "memory.swap.max")); err != nil {
			c.swap = "no memory.swap.max (swap accounting off): swap not limited by the cgroup"
		} else if err := c.write("memory.swap.max", "0"); err != nil {
			return nil, errors.Join(err, c.remove())
		}
		return c, nil
	}
	return nil, errors.New("memory cgroup: no v1 memory hierarchy and no v2 hierarchy with the memory controller is mounted")
}

// hasWord says whether the file name in dir holds word among its space-separated words.
func hasWord(dir, name, word string) bool {
	b, err := os.ReadFile(filepath.Join(dir, name))
	return err == nil && strings.Contains(" "+strings.Join(strings.Fields(string(b)), " ")+" ", " "+word+" ")
}

func (c *memCgroup) write(name, value string) error {
	if err := os.WriteFile(filepath.Join(c.dir, name), []byte(value), 0); err != nil {
		return fmt.Errorf("memory cgroup: write %s to %s: %w", value, name, err)
	}
	return nil
}

func (c *memCgroup) read(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, name))
	if err != nil {
		return "", fmt.Errorf("memory cgroup: %w", err)
	}
	return string(b), nil
}

// version names the hierarchy, for the report.
func (c *memCgroup) version() string {
	if c.v2 {
		return "v2"
	}
	return "v1"
}

// oomKills returns how many processes of the cgroup the OOM killer has killed (v1
// memory.oom_control, v2 memory.events: their oom_kill line).
func (c *memCgroup) oomKills() (int64, error) {
	name := "memory.oom_control"
	if c.v2 {
		name = "memory.events"
	}
	text, err := c.read(name)
	if err != nil {
		return 0, err
	}
	kv, err := parseKeyValues(text)
	if err != nil {
		return 0, fmt.Errorf("memory cgroup: %s: %w", name, err)
	}
	n, ok := kv["oom_kill"]
	if !ok {
		return 0, fmt.Errorf("memory cgroup: %s has no oom_kill line (kernel older than 4.13?)", name)
	}
	return n, nil
}

// peak returns the highest memory use of the cgroup (page cache included) since it was made
// or since resetPeak (v1 memory.max_usage_in_bytes, v2 memory.peak).
func (c *memCgroup) peak() (int64, error) {
	name := "memory.max_usage_in_bytes"
	if c.v2 {
		name = "memory.peak"
	}
	text, err := c.read(name)
	if err != nil {
		return 0, err
	}
	n, err := parseCount(text)
	if err != nil {
		return 0, fmt.Errorf("memory cgroup: %s: %w", name, err)
	}
	return n, nil
}

// resetPeak makes peak start again from the current use. Only v1 can (v2's memory.peak is
// reset per open file only).
func (c *memCgroup) resetPeak() error {
	if c.v2 {
		return errors.New("memory cgroup v2: memory.peak cannot be reset for later readers")
	}
	return c.write("memory.max_usage_in_bytes", "0")
}

// anon returns the cgroup's anonymous memory (v1 memory.stat rss, v2 memory.stat anon): the
// processes' own memory, without the page cache.
func (c *memCgroup) anon() (int64, error) {
	text, err := c.read("memory.stat")
	if err != nil {
		return 0, err
	}
	kv, err := parseKeyValues(text)
	if err != nil {
		return 0, fmt.Errorf("memory cgroup: memory.stat: %w", err)
	}
	key := "rss"
	if c.v2 {
		key = "anon"
	}
	n, ok := kv[key]
	if !ok {
		return 0, fmt.Errorf("memory cgroup: memory.stat has no %s line", key)
	}
	return n, nil
}

// remove removes the cgroup once its processes are gone (retrying for a few seconds while the
// kernel finishes with an exiting one).
func (c *memCgroup) remove() error {
	var err error
	for range 50 {
		if err = syscall.Rmdir(c.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("memory cgroup: remove %s: %w", c.dir, err)
}

// parseKeyValues parses a cgroup file of "name value" lines (memory.stat, memory.events,
// memory.oom_control) into values by name. Values are non-negative integers; a malformed or
// repeated line is an error, an empty line is skipped.
func parseKeyValues(text string) (map[string]int64, error) {
	m := map[string]int64{}
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: %q: want a name and a value", i+1, line)
		}
		if _, dup := m[f[0]]; dup {
			return nil, fmt.Errorf("line %d: %s repeated", i+1, f[0])
		}
		n, err := parseCount(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", i+1, f[0], err)
		}
		m[f[0]] = n
	}
	return m, nil
}

// parseCount parses one non-negative integer that fits an int64, spaces around it allowed
// (the content of memory.max_usage_in_bytes or memory.peak).
func parseCount(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a count: %q", tail(s, 40))
	}
	if n < 0 {
		return 0, fmt.Errorf("negative count %d", n)
	}
	return n, nil
}

// parseCgroupMounts finds, in the text of /proc/self/mounts, the mount point of the cgroup v1
// memory hierarchy (empty when there is none) and those of cgroup v2 hierarchies.
func parseCgroupMounts(text string) (v1 string, v2 []string, err error) {
	unescape := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 4 {
			return "", nil, fmt.Errorf("line %d: %q: want device, mount point, type and options", i+1, line)
		}
		dir := unescape.Replace(f[1])
		switch f[2] {
		case "cgroup":
			for _, opt := range strings.Split(f[3], ",") {
				if opt == "memory" && v1 == "" {
					v1 = dir
				}
			}
		case "cgroup2":
			v2 = append(v2, dir)
		}
	}
	return v1, v2, nil
}
