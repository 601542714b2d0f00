package remoterun

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"
)

// MaxLine bounds one output line; a longer line is cut into several, each prefixed.
const MaxLine = 64 << 10

// maxStderr bounds the stderr kept for a node's result line (its tail is kept).
const maxStderr = 16 << 10

// Result is one node's outcome, sent as one JSON line after its output.
type Result struct {
	Node       string `json:"node"`
	ExitCode   int    `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
	Stderr     string `json:"stderr"`
}

// NoExitCode is the exit code reported when a run produced none: it could not start, was
// cut at its deadline or cancelled, or the node is not below this relay.
const NoExitCode = -1

// line returns the result as a JSON line.
func (r Result) line() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(r) // a struct of strings and ints always encodes; Encode adds the newline
	return buf.Bytes()
}

// stream is where the runs of one call send their lines; one goroutine writes them to the
// client, so lines of many nodes interleave whole, never mixed. It is bounded: a slow client
// slows the runs down (their pipes fill) instead of filling memory.
type stream struct {
	lines chan []byte
	done  chan struct{}

	mu sync.Mutex // guards w: detach must not return while a write is under way
	w  http.ResponseWriter
	rc *http.ResponseController
}

// newStream starts the writer, with a queue of queue lines. With w nil (asynchronous calls without output) lines are
// dropped. A client that goes away turns the writer into a sink, so runs never block on it.
func newStream(w http.ResponseWriter, queue int) *stream {
	s := &stream{lines: make(chan []byte, max(queue, 1)), done: make(chan struct{}), w: w}
	if w != nil {
		s.rc = http.NewResponseController(w)
	}
	go func() {
		defer close(s.done)
		for line := range s.lines {
			s.write(line, len(s.lines) == 0)
		}
	}()
	return s
}

func (s *stream) write(line []byte, flush bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return
	}
	if _, err := s.w.Write(line); err != nil {
		s.w = nil
		return
	}
	if flush {
		if err := s.rc.Flush(); err != nil {
			s.w = nil
		}
	}
}

// detach stops all writing to the client (its handler is about to return); the lines still
// coming are dropped.
func (s *stream) detach() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w = nil
}

// send queues one line (it must end in '\n').
func (s *stream) send(line []byte) { s.lines <- line }

// close ends the stream once every line is written.
func (s *stream) close() {
	close(s.lines)
	<-s.done
}

// lineSplitter cuts what is written to it into lines, each sent to out with prefix in front;
// a line longer than MaxLine is cut into several. Flush sends a last unterminated line.
type lineSplitter struct {
	prefix string
	out    func([]byte)
	buf    []byte
}

func (l *lineSplitter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := MaxLine - len(l.buf)
			if len(p) < room {
				l.buf = append(l.buf, p...)
				return n, nil
			}
			l.buf = append(l.buf, p[:room]...)
			p = p[room:]
			l.emit()
			continue
		}
		l.buf = append(l.buf, p[:i]...)
		p = p[i+1:]
		l.emit()
	}
	return n, nil
}

// Flush sends what is left as a last line.
func (l *lineSplitter) Flush() {
	if len(l.buf) > 0 {
		l.emit()
	}
}

func (l *lineSplitter) emit() {
	line := make([]byte, 0, len(l.prefix)+len(l.buf)+1)
	line = append(line, l.prefix...)
	line = append(line, l.buf...)
	line = append(line, '\n')
	l.out(line)
	l.buf = l.buf[:0]
}

// tail keeps the last max bytes written to it.
type tail struct {
	max int
	buf []byte
	cut bool
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.cut = true
	}
	return len(p), nil
}

func (t *tail) String() string {
	if t.cut {
		return "[...]" + string(t.buf)
	}
	return string(t.buf)
}
