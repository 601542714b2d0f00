// Package runoutput is the line format of a run's output, as the relay API's remote run
// (SPEC-relay-api.md, "Remote run") and the edge admin API's invoke stream it: every output
// line prefixed "<node-id>:" so interleaved output of many nodes stays parseable, and at the
// end of each node one JSON result line {"node":..,"exit_code":..,"duration_ms":..,"stderr":".."}.
//
// It holds the bounds of that format (MaxLine, MaxStderr, MaxStreamLine), the result line
// (Result, NoExitCode), the line splitter that cuts and prefixes output (LineSplitter) and
// the stderr tail kept for a result (Tail). Keel's three writers of this format — the
// relay's remote run, the edge server's agent runs and the edge admin invoke — all use it.
package runoutput

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// MaxLine bounds one output line, without its prefix and newline; a longer line is cut into
// several, each prefixed.
const MaxLine = 64 << 10

// MaxStderr bounds the stderr kept for a node's result line: its tail is kept, marked with
// TailMark in front when anything was cut.
const MaxStderr = 16 << 10

// MaxStreamLine bounds any line of an answer in this format, prefix and newline included:
// an output line (at most MaxLine bytes behind a node id) or a result line, whose stderr
// (at most MaxStderr bytes) takes at most 6 bytes a byte once JSON-escaped (\u0000).
// A reader of such an answer (a relay merging its sub-relay's, a CLI) splits lines at this
// bound, never at MaxLine, so a full output line or result line is never cut.
const MaxStreamLine = 2 * MaxLine

// NoExitCode is the exit code of a node run that produced none: it could not start, was
// cut at its deadline or cancelled, failed on the way, or the node is not below the relay.
const NoExitCode = -1

// Separator ends the node id in front of an output line: "<node-id>:" with no space.
const Separator = ":"

// Prefix returns the prefix of node's output lines.
func Prefix(node string) string { return node + Separator }

// Result is one node's outcome, sent as one JSON line after its output.
type Result struct {
	Node       string `json:"node"`
	ExitCode   int    `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
	Stderr     string `json:"stderr"`
}

// Line returns the result as a JSON line.
func (r Result) Line() []byte { return JSONLine(r) }

// JSONLine encodes v as one JSON line ending in '\n', without HTML escaping, as result
// lines are written. v must be a struct of strings and numbers (which always encode);
// anything else panics.
func JSONLine(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // Encode adds the newline
		panic(fmt.Sprintf("runoutput: a result line does not encode: %v", err))
	}
	return buf.Bytes()
}

// IsResultLine tells a node's JSON result line from an output line ("<node-id>:...").
// An output line never starts with '{': node ids cannot hold it.
func IsResultLine(line []byte) bool { return len(line) > 0 && line[0] == '{' }
