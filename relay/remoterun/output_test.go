package remoterun

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestLineSplitter(t *testing.T) {
	var got []string
	l := &lineSplitter{prefix: "n1:", out: func(b []byte) { got = append(got, string(b)) }}
	long := strings.Repeat("x", MaxLine+10)
	for _, piece := range []string{"first\nsec", "ond\n\n", long, "\nlast without newline"} {
		if _, err := l.Write([]byte(piece)); err != nil {
			t.Fatal(err)
		}
	}
	l.Flush()
	want := []string{"n1:first\n", "n1:second\n", "n1:\n", "n1:" + strings.Repeat("x", MaxLine) + "\n",
		"n1:" + strings.Repeat("x", 10) + "\n", "n1:last without newline\n"}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %.40q, want %.40q", i, got[i], want[i])
		}
	}
}

func TestResultLine(t *testing.T) {
	r := Result{Node: "n1", ExitCode: 2, DurationMS: 1500, Stderr: "line \"one\"\n<two>\t\x00\xff"}
	line := r.line()
	if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one JSON line: %q", line)
	}
	if !strings.HasPrefix(string(line), `{"node":"n1","exit_code":2,"duration_ms":1500,"stderr":`) {
		t.Errorf("field order: %s", line)
	}
	var back Result
	if err := json.Unmarshal(line, &back); err != nil || back.Node != "n1" || back.ExitCode != 2 {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestTail(t *testing.T) {
	tl := &tail{max: 10}
	_, _ = tl.Write([]byte("0123456789abc"))
	if got := tl.String(); got != "[...]3456789abc" {
		t.Errorf("tail = %q", got)
	}
}
