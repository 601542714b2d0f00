package storage

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// logMapping is one memory mapping of a store file, from /proc/self/maps.
type logMapping struct {
	start, end uintptr
	path       string
}

// parseLogMappings returns the mappings of files directly in dir listed in maps (the
// format of /proc/self/maps). Malformed lines are skipped.
func parseLogMappings(maps []byte, dir string) []logMapping {
	var out []logMapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || filepath.Dir(f[5]) != dir {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, logMapping{start: uintptr(start), end: uintptr(end), path: f[5]})
	}
	return out
}

// writtenLogs picks, among mappings, those Badger appends to: every *.mem file and the
// *.vlog file with the highest number.
func writtenLogs(maps []logMapping) []logMapping {
	var out []logMapping
	newest, newestFid := -1, uint64(0)
	for i, m := range maps {
		name := filepath.Base(m.path)
		switch {
		case strings.HasSuffix(name, ".mem"):
			out = append(out, m)
		case strings.HasSuffix(name, ".vlog"):
			fid, err := strconv.ParseUint(strings.TrimSuffix(name, ".vlog"), 10, 32)
			if err == nil && (newest < 0 || fid > newestFid) {
				newest, newestFid = i, fid
			}
		}
	}
	if newest >= 0 {
		out = append(out, maps[newest])
	}
	return out
}

// adviseLogMappings gives MADV_RANDOM to the mappings of the logs of dir that Badger
// appends to; with bulk, the value log gets MADV_NORMAL instead (logAdvice).
func adviseLogMappings(dir string, bulk bool) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	for _, m := range writtenLogs(parseLogMappings(maps, abs)) {
		// The mapping is Badger's, known only by its address: the system call takes the
		// address as a number, so no Go pointer is made up from it.
		advice := uintptr(unix.MADV_RANDOM)
		if bulk && strings.HasSuffix(m.path, ".vlog") {
			advice = unix.MADV_NORMAL
		}
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, advice)
	}
}
