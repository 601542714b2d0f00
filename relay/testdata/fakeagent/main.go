// Command fakeagent stands in for "rudder remote run" in the remote-run tests: it prints
// numbered lines for its node, can write to stderr, exit with a given code or hang, and leaves
// pid files behind so that tests can tell it ran and check that it (and a child it spawned) was
// killed.
//
// Each output line is "<node> <number> " padded with 'x' to -bytes bytes (before the newline).
// With -classes set (the relay drops the flag when no classes are asked), the first line is
// "classes=<value>". With -piddir, it writes <node>.pid at start, <node>.child.pid when it
// spawns a child (-child, just before hanging), and <node>.done just before it exits (never
// when it hangs). A run that ends normally leaves no process behind.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// hangFor is how long a hanging agent (and its child) sleeps: "forever" for any test.
const hangFor = 10 * time.Minute

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fakeagent:", err)
		os.Exit(100)
	}
}

func run() error {
	node := flag.String("node", "", "node id (required)")
	flag.String("host", "", "node hostname (accepted, unused)")
	classes := flag.String("classes", "", "classes; when set, printed as the first line")
	lines := flag.Int("lines", 0, "number of numbered lines to print")
	delay := flag.Duration("delay", 0, "pause before each line")
	jitter := flag.Duration("jitter", 0, "random extra pause before each line, up to this")
	size := flag.Int("bytes", 0, "bytes per line, newline excluded (at least the line's text)")
	stderr := flag.String("stderr", "", "text written to stderr after the lines")
	exit := flag.Int("exit", 0, "exit code")
	hang := flag.Bool("hang", false, "hang after the lines and stderr (for 10 minutes at most, so that a crashed test leaves nothing behind for long)")
	hangNodes := flag.String("hang-nodes", "", "comma-separated node ids that hang (as -hang)")
	pidDir := flag.String("piddir", "", "directory for <node>.pid, <node>.child.pid and <node>.done")
	child := flag.Bool("child", false, "before hanging, spawn a child 'sleep 600' (in this process group) and record its pid")
	flag.Parse()
	if *node == "" {
		return fmt.Errorf("-node is required")
	}
	if *pidDir != "" {
		if err := writeFile(*pidDir, *node+".pid", os.Getpid()); err != nil {
			return err
		}
	}
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	paced := *delay > 0 || *jitter > 0
	if *classes != "" {
		fmt.Fprintf(out, "classes=%s\n", *classes)
	}
	for i := range *lines {
		if paced {
			pause := *delay
			if *jitter > 0 {
				pause += rand.N(*jitter)
			}
			time.Sleep(pause)
		}
		text := fmt.Sprintf("%s %06d ", *node, i)
		out.WriteString(text)
		for n := len(text); n < *size; n++ {
			out.WriteByte('x')
		}
		out.WriteByte('\n')
		if paced {
			if err := out.Flush(); err != nil {
				return fmt.Errorf("write stdout: %w", err)
			}
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write stdout: %w", err)
	}
	if *stderr != "" {
		fmt.Fprint(os.Stderr, *stderr)
	}
	if *hang || slices.Contains(strings.Split(*hangNodes, ","), *node) {
		if *child {
			cmd := exec.Command("sleep", strconv.Itoa(int(hangFor.Seconds())))
			if err := cmd.Start(); err != nil {
				return fmt.Errorf("spawn child: %w", err)
			}
			if *pidDir != "" {
				if err := writeFile(*pidDir, *node+".child.pid", cmd.Process.Pid); err != nil {
					return err
				}
			}
		}
		time.Sleep(hangFor)
	}
	if *pidDir != "" {
		if err := writeFile(*pidDir, *node+".done", os.Getpid()); err != nil {
			return err
		}
	}
	os.Exit(*exit)
	return nil
}

// writeFile writes a number to dir/name atomically (a reader never sees it half written).
func writeFile(dir, name string, n int) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(n)), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
