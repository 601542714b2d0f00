package membudget

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Limit is the memory limit the process runs under, as found in the system.
type Limit struct {
	// Bytes is the limit; 0 means none was found.
	Bytes int64
	// Source says where it comes from: "cgroup v2 <file>", "cgroup v1 <file>", "MemTotal"
	// (the machine's RAM, /proc/meminfo) or "none".
	Source string
}

// unlimitedV1 is the smallest value cgroup v1 uses for "no limit": the kernel reports
// PAGE_COUNTER_MAX pages, 9223372036854771712 with 4 KiB pages, a little less with larger
// pages; no machine has 2^60 bytes of RAM.
const unlimitedV1 = 1 << 60

// maxReadSize bounds what is read of one of the files below: they are a few lines at most,
// and a fake or broken file must not make the reader allocate without bound.
const maxReadSize = 1 << 20

// ReadLimit returns the memory limit of the calling process: the smallest of the cgroup v2
// memory.max and cgroup v1 memory.limit_in_bytes of its cgroup and of every parent up to the
// hierarchy's mount, and the machine's MemTotal. root is the file system root the /proc and
// /sys paths are read under ("" or "/" for the real one; tests give a fake tree). Files that
// do not exist mean no limit there (a cgroup v2 tree without the memory controller has no
// memory.max); a file that exists but does not parse is an error naming it, and the Limit
// returned with it is what could be read (never larger than the truth is known to be).
func ReadLimit(root string) (Limit, error) {
	best := Limit{Source: "none"}
	consider := func(n int64, source string) {
		if n > 0 && (best.Bytes == 0 || n < best.Bytes) {
			best = Limit{Bytes: n, Source: source}
		}
	}
	var errs []error
	if n, err := memTotal(root); err != nil {
		errs = append(errs, err)
	} else {
		consider(n, "MemTotal")
	}
	groups, err := readCgroups(root)
	if err != nil {
		errs = append(errs, err)
	}
	if len(groups) > 0 {
		mounts, err := readMounts(root)
		if err != nil {
			errs = append(errs, err)
		}
		for _, m := range mounts {
			rel, ok := groups[m.hierarchy()]
			if !ok {
				continue
			}
			dir, ok := m.dirOf(rel)
			if !ok {
				continue
			}
			n, file, err := smallestUp(root, m.point, dir, m.limitFile())
			if err != nil {
				errs = append(errs, err)
			}
			consider(n, m.version()+" "+file)
		}
	}
	return best, errors.Join(errs...)
}

// memTotal returns MemTotal of /proc/meminfo in bytes; a missing file is 0 (not Linux).
func memTotal(root string) (int64, error) {
	name := filepath.Join(rootDir(root), "proc", "meminfo")
	data, err := readSmall(name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := parseMemInfo(data)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

// parseMemInfo returns MemTotal, in bytes, from the content of /proc/meminfo.
func parseMemInfo(data []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("MemTotal line %q is not \"MemTotal: <n> kB\"", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb <= 0 || kb > math.MaxInt64/1024 {
			return 0, fmt.Errorf("MemTotal %q is not a positive number of kB", f[0])
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no MemTotal line")
}

// readCgroups returns the cgroup of the process in each hierarchy, from /proc/self/cgroup:
// "memory" for the v1 memory controller, "" for the v2 unified hierarchy. A missing file
// (not Linux) is no cgroup.
func readCgroups(root string) (map[string]string, error) {
	name := filepath.Join(rootDir(root), "proc", "self", "cgroup")
	data, err := readSmall(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	groups, err := parseCgroup(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return groups, nil
}

// parseCgroup parses /proc/self/cgroup ("id:controllers:path" lines) and returns the path of
// the process's cgroup in the v1 memory hierarchy (key "memory") and in the v2 unified
// hierarchy (key ""), where it has them.
func parseCgroup(data []byte) (map[string]string, error) {
	groups := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || id == "" || !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("line %d %q is not id:controllers:/path", i+1, line)
		}
		if _, err := strconv.ParseUint(id, 10, 32); err != nil {
			return nil, fmt.Errorf("line %d %q: hierarchy id %q is not a number", i+1, line, id)
		}
		switch {
		case id == "0" && ctrls == "":
			groups[""] = p
		default:
			for _, c := range strings.Split(ctrls, ",") {
				if c == "memory" {
					groups["memory"] = p
				}
			}
		}
	}
	return groups, nil
}

// mount is a cgroup file system mount from /proc/self/mountinfo.
type mount struct {
	root  string // the cgroup mounted there ("/" unless in a namespace or bind mount)
	point string // where
	v2    bool
}

func (m mount) hierarchy() string {
	if m.v2 {
		return ""
	}
	return "memory"
}

func (m mount) version() string {
	if m.v2 {
		return "cgroup v2"
	}
	return "cgroup v1"
}

func (m mount) limitFile() string {
	if m.v2 {
		return "memory.max"
	}
	return "memory.limit_in_bytes"
}

// dirOf returns the directory, below the mount point, of the cgroup at path rel of the
// hierarchy; ok is false when that cgroup is not visible through this mount.
func (m mount) dirOf(rel string) (string, bool) {
	rel, r := path.Clean(rel), path.Clean(m.root)
	if r != "/" {
		if rel != r && !strings.HasPrefix(rel, r+"/") {
			return "", false
		}
		rel = strings.TrimPrefix(rel, r)
	}
	return path.Join(m.point, rel), true
}

// readMounts returns the cgroup v2 mounts and the cgroup v1 mounts of the memory controller.
func readMounts(root string) ([]mount, error) {
	name := filepath.Join(rootDir(root), "proc", "self", "mountinfo")
	data, err := readSmall(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	mounts, err := parseMountInfo(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return mounts, nil
}

// parseMountInfo returns the cgroup mounts of /proc/self/mountinfo that may hold a memory
// limit: every cgroup2 mount and the cgroup (v1) mounts with the memory controller.
func parseMountInfo(data []byte) ([]mount, error) {
	var out []mount
	for i, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 1 {
			return nil, fmt.Errorf("line %d %q is not a mountinfo line", i+1, line)
		}
		m := mount{root: path.Clean(unescapeMount(f[3])), point: path.Clean(unescapeMount(f[4]))}
		switch g[0] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			if len(g) < 3 || !hasOption(g[2], "memory") {
				continue
			}
		default:
			continue
		}
		if !strings.HasPrefix(m.root, "/") || !strings.HasPrefix(m.point, "/") {
			return nil, fmt.Errorf("line %d %q: root and mount point must be absolute", i+1, line)
		}
		out = append(out, m)
	}
	return out, nil
}

func hasOption(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// unescapeMount undoes the octal escapes (\040 for a space...) of mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// smallestUp reads the limit file in dir and in each parent up to (and including) the mount
// point, and returns the smallest limit found with its file (0: none).
func smallestUp(root, point, dir, file string) (int64, string, error) {
	var best int64
	var where string
	var errs []error
	for d := dir; ; d = path.Dir(d) {
		name := filepath.Join(rootDir(root), filepath.FromSlash(d), file)
		data, err := readSmall(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			errs = append(errs, err)
		default:
			n, err := parseLimitValue(data)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			} else if n > 0 && (best == 0 || n < best) {
				best, where = n, path.Join(d, file)
			}
		}
		if d == point || d == "/" || !strings.HasPrefix(d, point) {
			break
		}
	}
	return best, where, errors.Join(errs...)
}

// parseLimitValue parses the content of a cgroup memory.max or memory.limit_in_bytes: a
// number of bytes, or "max" (v2) or a value of 2^60 or more (v1), both meaning no limit (0).
func parseLimitValue(data []byte) (int64, error) {
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return 0, fmt.Errorf("%q is not a number of bytes or \"max\"", s)
	}
	if n >= unlimitedV1 {
		return 0, nil
	}
	if n == 0 {
		return 0, errors.New("a limit of 0 bytes")
	}
	return int64(n), nil
}

func rootDir(root string) string {
	if root == "" {
		return "/"
	}
	return root
}

// readSmall reads a file of at most maxReadSize bytes.
func readSmall(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxReadSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxReadSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxReadSize)
	}
	return data, nil
}
