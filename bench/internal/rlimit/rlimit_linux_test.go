//go:build linux

package rlimit

import (
	"fmt"
	"math"
	"syscall"
	"testing"
)

func TestRaiseNoFile(t *testing.T) {
	var before syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &before); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		need int
		want string // the error, "" for none
	}{
		{"none needed", 0, ""},
		{"one", 1, ""},
		{"the hard limit", int(min(before.Max, math.MaxInt32)), ""},
		{"above the hard limit", math.MaxInt, fmt.Sprintf("open-file limit %d is below the %d needed: raise ulimit -Hn", before.Max, math.MaxInt)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want != "" && before.Max >= math.MaxInt {
				t.Skip("the hard open-file limit is unlimited")
			}
			got := ""
			if err := RaiseNoFile(tc.need); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("RaiseNoFile(%d) = %q, want %q", tc.need, got, tc.want)
			}
			var after syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &after); err != nil {
				t.Fatal(err)
			}
			if after.Cur != before.Max || after.Max != before.Max {
				t.Fatalf("limit after = %d/%d, want the hard limit %d for both", after.Cur, after.Max, before.Max)
			}
		})
	}
}
