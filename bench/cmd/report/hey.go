//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// heyResult is what the benchmark reads from hey's summary.
type heyResult struct {
	Total      time.Duration
	ReqPerSec  float64
	P50, P99   time.Duration
	Statuses   map[int]int // status code -> responses
	Errors     int         // requests that got no response
	ErrorLines []string    // hey's error distribution, as printed
}

// parseHey reads hey's default summary output. It fails when a figure the benchmark needs is
// missing or malformed, so a change of hey's format is noticed instead of reported as zero.
func parseHey(out string) (heyResult, error) {
	res := heyResult{Statuses: map[int]int{}}
	var haveTotal, haveRate, have50, have99 bool
	section := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if !strings.HasPrefix(sc.Text(), " ") && strings.HasSuffix(line, ":") {
			section = strings.TrimSuffix(line, ":")
			continue
		}
		var err error
		switch {
		case section == "Summary" && strings.HasPrefix(line, "Total:"):
			res.Total, err = heySeconds(strings.TrimPrefix(line, "Total:"))
			haveTotal = true
		case section == "Summary" && strings.HasPrefix(line, "Requests/sec:"):
			res.ReqPerSec, err = heyFloat(strings.TrimPrefix(line, "Requests/sec:"))
			haveRate = true
		case section == "Latency distribution" && percentile(line) == "50":
			res.P50, err = heySeconds(line[strings.Index(line, " in ")+4:])
			have50 = true
		case section == "Latency distribution" && percentile(line) == "99":
			res.P99, err = heySeconds(line[strings.Index(line, " in ")+4:])
			have99 = true
		case section == "Status code distribution":
			err = res.addStatus(line)
		case section == "Error distribution":
			err = res.addError(line)
		}
		if err != nil {
			return heyResult{}, fmt.Errorf("hey output line %d %q: %w", n, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return heyResult{}, fmt.Errorf("reading hey output: %w", err)
	}
	var missing []string
	for name, ok := range map[string]bool{"Total": haveTotal, "Requests/sec": haveRate, "50%": have50, "99%": have99} {
		if !ok {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 && res.Errors == 0 {
		return heyResult{}, fmt.Errorf("hey output lacks %s", strings.Join(missing, ", "))
	}
	return res, nil
}

// percentile returns the percentile of a latency line, "50" for "50% in 0.0028 secs" (hey
// 0.1.5 prints "50%% in": a doubled format verb), or "" for another line.
func percentile(line string) string {
	head, _, ok := strings.Cut(line, " in ")
	if !ok {
		return ""
	}
	p, ok := strings.CutSuffix(head, "%")
	if !ok {
		return ""
	}
	p = strings.TrimSuffix(p, "%")
	if _, err := strconv.Atoi(p); err != nil {
		return ""
	}
	return p
}

// addStatus parses "[200]	5000 responses".
func (h *heyResult) addStatus(line string) error {
	code, rest, ok := bracketed(line)
	if !ok {
		return errors.New("not a status line")
	}
	c, err := strconv.Atoi(code)
	if err != nil || c < 100 || c > 999 {
		return fmt.Errorf("status %q is not an HTTP status code", code)
	}
	count, ok := strings.CutSuffix(strings.TrimSpace(rest), " responses")
	if !ok {
		return errors.New(`no " responses" count`)
	}
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil || n < 0 {
		return fmt.Errorf("count %q is not a number of responses", count)
	}
	h.Statuses[c] += n
	return nil
}

// addError parses "[12]	Head "http://...": dial tcp ...".
func (h *heyResult) addError(line string) error {
	count, rest, ok := bracketed(line)
	if !ok {
		return errors.New("not an error line")
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 0 {
		return fmt.Errorf("error count %q is not a number", count)
	}
	h.Errors += n
	h.ErrorLines = append(h.ErrorLines, strings.TrimSpace(rest))
	return nil
}

// bracketed splits "[x] rest" into x and rest.
func bracketed(line string) (inside, rest string, ok bool) {
	if !strings.HasPrefix(line, "[") {
		return "", "", false
	}
	inside, rest, ok = strings.Cut(line[1:], "]")
	return inside, rest, ok
}

func heyFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a non-negative number", strings.TrimSpace(s))
	}
	return f, nil
}

// heySeconds parses "0.0041 secs".
func heySeconds(s string) (time.Duration, error) {
	num, ok := strings.CutSuffix(strings.TrimSpace(s), " secs")
	if !ok {
		return 0, fmt.Errorf("%q is not a duration in secs", strings.TrimSpace(s))
	}
	f, err := heyFloat(num)
	if err != nil {
		return 0, err
	}
	if f > 1e6 {
		return 0, fmt.Errorf("%q: implausible duration", num)
	}
	return time.Duration(math.Round(f * float64(time.Second))), nil
}

// heyCommand returns the argv running hey through the tools module, for a HEAD load of n
// requests from c workers.
func heyCommand(root string, n, c int, url string) []string {
	return []string{"go", "tool", "-modfile=" + root + "/tools/go.mod", "hey",
		"-n", strconv.Itoa(n), "-c", strconv.Itoa(c), "-m", "HEAD", "-t", "20", url}
}

// runHey runs hey and checks every request got a 200. hey sends n/c requests per worker, so
// n rounded down to a multiple of c.
func runHey(ctx context.Context, root string, n, c int, url string) (heyResult, error) {
	argv := heyCommand(root, n, c, url)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return heyResult{}, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(stderr.String(), 2000))
	}
	res, err := parseHey(string(out))
	if err != nil {
		return heyResult{}, err
	}
	if sent := n / c * c; res.Errors > 0 || res.Statuses[200] != sent {
		return res, fmt.Errorf("hey against %s: %d of %d requests answered 200 (statuses %v, %d errors: %s)",
			url, res.Statuses[200], sent, res.Statuses, res.Errors, strings.Join(res.ErrorLines, "; "))
	}
	return res, nil
}
