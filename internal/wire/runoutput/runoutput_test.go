package runoutput

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/ids"
)

func TestLineSplitter(t *testing.T) {
	x := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name   string
		max    int
		writes []string
		want   []string
	}{
		{"lines across writes", 0, []string{"first\nsec", "ond\n\n", "last without newline"},
			[]string{"n1:first\n", "n1:second\n", "n1:\n", "n1:last without newline\n"}},
		{"long line in one write", 0, []string{x(MaxLine+10) + "\nlast"},
			[]string{"n1:" + x(MaxLine) + "\n", "n1:" + x(10) + "\n", "n1:last\n"}},
		{"long line over writes", 0, []string{x(MaxLine - 1), "xx", x(8), "\n"},
			[]string{"n1:" + x(MaxLine) + "\n", "n1:" + x(9) + "\n"}},
		{"newline after a full line is not an empty line", 0, []string{x(MaxLine), "\n", "a\n"},
			[]string{"n1:" + x(MaxLine) + "\n", "n1:a\n"}},
		{"full line then its newline in one write", 0, []string{x(MaxLine) + "\nb"},
			[]string{"n1:" + x(MaxLine) + "\n", "n1:b\n"}},
		{"small max", 3, []string{"abcdefg\nhi\n"}, []string{"n1:abc\n", "n1:def\n", "n1:g\n", "n1:hi\n"}},
		{"nothing", 0, nil, nil},
		{"only newlines", 0, []string{"\n\n"}, []string{"n1:\n", "n1:\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			l := NewLineSplitter("n1", func(b []byte) { got = append(got, string(b)) })
			l.Max = tt.max
			for _, w := range tt.writes {
				if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			l.Flush()
			if len(got) != len(tt.want) {
				t.Fatalf("got %d lines, want %d: %.80q", len(got), len(tt.want), got)
			}
			for i := range tt.want {
				if got[i] != tt.want[i] {
					t.Errorf("line %d = %.40q, want %.40q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// FuzzLineSplitter checks that whatever is written, in whatever pieces, comes out as lines
// of at most Max bytes behind their prefix that give the input back.
func FuzzLineSplitter(f *testing.F) {
	f.Add("a\nb", 1, 4)
	f.Add("\n\n\n", 2, 1)
	f.Add("abcdefghij\nklm", 3, 3)
	f.Add("", 0, 5)
	f.Fuzz(func(t *testing.T, in string, cut, limit int) {
		limit = 1 + abs(limit)%16
		cut = abs(cut) % (len(in) + 1)
		var lines []string
		l := &LineSplitter{Prefix: "p:", Max: limit, Out: func(b []byte) { lines = append(lines, string(b)) }}
		_, _ = l.Write([]byte(in[:cut]))
		_, _ = l.Write([]byte(in[cut:]))
		l.Flush()
		var back strings.Builder
		for _, line := range lines {
			body, ok := strings.CutPrefix(line, "p:")
			if !ok || !strings.HasSuffix(body, "\n") || strings.Count(body, "\n") != 1 || len(body)-1 > limit {
				t.Fatalf("bad line %q (max %d)", line, limit)
			}
			back.WriteString(body)
		}
		// Every newline of the input ends a line; cut lines add one.
		got := strings.ReplaceAll(back.String(), "\n", "")
		if want := strings.ReplaceAll(in, "\n", ""); got != want {
			t.Fatalf("lines %q do not give back %q", lines, in)
		}
		if n := strings.Count(in, "\n"); len(lines) < n {
			t.Fatalf("%d lines for %d newlines", len(lines), n)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func TestResultLine(t *testing.T) {
	r := Result{Node: "n1", ExitCode: 2, DurationMS: 1500, Stderr: "line \"one\"\n<two>\t\x00\xff"}
	line := r.Line()
	if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 || !IsResultLine(line) {
		t.Fatalf("not one JSON line: %q", line)
	}
	if !strings.HasPrefix(string(line), `{"node":"n1","exit_code":2,"duration_ms":1500,"stderr":"line \"one\"\n<two>`) {
		t.Errorf("field order or escaping: %s", line)
	}
	var back Result
	if err := json.Unmarshal(line, &back); err != nil || back.Node != "n1" || back.ExitCode != 2 {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestIsResultLine(t *testing.T) {
	for _, tt := range []struct {
		line string
		want bool
	}{{`{"node":"a"}`, true}, {"a:{", false}, {"", false}, {"\n", false}} {
		if got := IsResultLine([]byte(tt.line)); got != tt.want {
			t.Errorf("IsResultLine(%q) = %v", tt.line, got)
		}
	}
}

// TestMaxStreamLine checks that the longest output line and the longest result line fit
// in MaxStreamLine, so a reader splitting at it never cuts one.
func TestMaxStreamLine(t *testing.T) {
	node := strings.Repeat("n", ids.MaxLen)
	var out []byte
	l := NewLineSplitter(node, func(b []byte) { out = b })
	_, _ = l.Write(bytes.Repeat([]byte("x"), MaxLine))
	l.Flush()
	var tl Tail
	_, _ = tl.Write(bytes.Repeat([]byte{0}, 2*MaxStderr))
	res := Result{Node: node, ExitCode: NoExitCode, DurationMS: 1 << 62, Stderr: tl.String()}.Line()
	for name, line := range map[string][]byte{"output": out, "result": res} {
		if len(line) > MaxStreamLine {
			t.Errorf("longest %s line is %d bytes, more than MaxStreamLine (%d)", name, len(line), MaxStreamLine)
		}
	}
}

func TestTail(t *testing.T) {
	big := strings.Repeat("a", MaxStderr-3) + "xyz"
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"short", []string{"one\n", "two\n"}, "one\ntwo\n"},
		{"exactly full", []string{big}, big},
		{"over in one write", []string{"0123" + big}, TailMark + big},
		{"over across writes", []string{"0123", big}, TailMark + big},
		{"over by small writes", []string{big, "!"}, TailMark + big[1:] + "!"},
		{"full write after some", []string{"q", big}, TailMark + big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tl Tail
			for _, w := range tt.writes {
				if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := tl.String(); got != tt.want {
				t.Errorf("tail = %.20q... (%d bytes), want %.20q... (%d bytes)", got, len(got), tt.want, len(tt.want))
			}
		})
	}
}

func TestEdgeExitCode(t *testing.T) {
	tests := []struct {
		name string
		res  *edgepb.EdgeResult
		want int
	}{
		{"ok 0", &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Ok_{Ok: &edgepb.EdgeResult_Ok{}}}, 0},
		{"ok 2", &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Ok_{Ok: &edgepb.EdgeResult_Ok{ExitCode: 2}}}, 2},
		{"ok killed", &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Ok_{Ok: &edgepb.EdgeResult_Ok{ExitCode: 137}}}, 137},
		{"err with code", &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Err_{Err: &edgepb.EdgeResult_Err{Code: "x", ExitCode: 3}}}, 3},
		{"err without code", &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Err_{Err: &edgepb.EdgeResult_Err{Code: "exec-failed"}}}, NoExitCode},
		{"timed out", &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_TimedOut_{TimedOut: &edgepb.EdgeResult_TimedOut{}}}, NoExitCode},
		{"cancelled", &edgepb.EdgeResult{Outcome: &edgepb.EdgeResult_Cancelled_{Cancelled: &edgepb.EdgeResult_Cancelled{}}}, NoExitCode},
		{"no outcome", &edgepb.EdgeResult{}, NoExitCode},
		{"nil", nil, NoExitCode},
	}
	for _, tt := range tests {
		if got := EdgeExitCode(tt.res); got != tt.want {
			t.Errorf("%s: EdgeExitCode = %d, want %d", tt.name, got, tt.want)
		}
	}
}
