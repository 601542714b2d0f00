//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Machine describes where the figures were measured.
type Machine struct {
	NProc       int    `json:"nproc"`
	CPU         string `json:"cpu"`
	GoVersion   string `json:"go_version"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	Kernel      string `json:"kernel"`
	MemTotalMiB int64  `json:"mem_total_mib"`
	DataDir     string `json:"data_dir"`
	DataFS      string `json:"data_fs"`
	LoadStart   string `json:"load_avg_start"`
	LoadEnd     string `json:"load_avg_end"`
}

// describeMachine gathers what is known about this machine; unknown parts stay empty.
func describeMachine(dataDir string) Machine {
	m := Machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, DataDir: dataDir}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if mem, err := procKB("/proc/meminfo"); err == nil {
		m.MemTotalMiB = mem["MemTotal"] >> 20
	}
	m.DataFS = fsOf(dataDir)
	m.LoadStart = loadAvg()
	return m
}

// loadAvg returns the 1, 5 and 15 minute load averages as /proc/loadavg has them.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// fsOf names the file system holding dir ("ext4 on /dev/vda"), from /proc/self/mounts: the
// longest mount point that is a prefix of dir.
func fsOf(dir string) string {
	abs, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return ""
	}
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return ""
	}
	best, desc := "", ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, desc = mp, f[2]+" on "+f[0]
		}
	}
	return desc
}

// procKB reads a /proc file of "Name:   123 kB" lines into bytes by name.
func procKB(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	m := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 || fields[2] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		m[strings.TrimSuffix(fields[0], ":")] = kb << 10
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return m, nil
}

// memStatus is a process's memory as /proc/<pid>/status reports it, in bytes.
type memStatus struct {
	RSS, HWM, Anon, File int64
}

// processMemory reads pid's resident memory. File includes shared memory (RssShmem).
func processMemory(pid int) (memStatus, error) {
	m, err := procKB(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, err
	}
	if _, ok := m["VmRSS"]; !ok {
		return memStatus{}, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return memStatus{RSS: m["VmRSS"], HWM: m["VmHWM"], Anon: m["RssAnon"], File: m["RssFile"] + m["RssShmem"]}, nil
}

// cpuTime returns the user plus system CPU time pid has used, from /proc/<pid>/stat (in clock
// ticks of 10 ms: USER_HZ is 100 on Linux).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces: count after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu time of %d: malformed /proc/%d/stat", pid, pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time of %d: short /proc/%d/stat", pid, pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// sampleMemory reads pid's resident memory every 10 ms until the returned stop is called,
// which returns the highest anonymous, file-backed and total RSS seen (HWM is left zero).
func sampleMemory(pid int) (stop func() memStatus) {
	var peak memStatus
	done := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := processMemory(pid); err == nil {
				peak.Anon, peak.File, peak.RSS = max(peak.Anon, m.Anon), max(peak.File, m.File), max(peak.RSS, m.RSS)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() memStatus {
		close(done)
		sampler.Wait()
		return peak
	}
}

// resetPeakNote resets pid's VmHWM (resetPeak) before what a scenario measures and returns
// the scenario's note on how its peak is read: reset when the reset worked, notReset when
// it did not (the peak then includes the start-up peak, which is logged).
func (b *bench) resetPeakNote(pid int, reset, notReset string) string {
	if err := resetPeak(pid); err != nil {
		b.log.Warn("peak RSS not reset: it includes the start-up peak", "err", err)
		return notReset
	}
	return reset
}

// resetPeak resets pid's VmHWM to its current RSS (Linux ≥ 4.0), so the next reading is the
// peak of what follows.
func resetPeak(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS of %d: %w", pid, err)
	}
	return nil
}

// diskUsage returns the bytes allocated on disk to the files under dir, as du counts them
// (st_blocks, so sparse files count what they use). Files vanishing during the walk (Badger
// removing a table or value-log file) are skipped.
func diskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else if !d.IsDir() {
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("disk usage of %s: %w", dir, err)
	}
	return total, nil
}
