package runoutput

import "bytes"

// LineSplitter cuts what is written to it into lines, each handed to Out with Prefix in
// front and '\n' at the end (a line's own '\n' is not repeated); a line longer than Max
// bytes (MaxLine when 0) is cut into several. Flush hands over a last unterminated line.
// Out must not keep the slice it gets past the call unless it owns it: each line is a new
// slice.
type LineSplitter struct {
	Prefix string
	Max    int
	Out    func(line []byte)
	buf    []byte
}

// NewLineSplitter returns a splitter sending node's output lines, prefixed, to out.
func NewLineSplitter(node string, out func(line []byte)) *LineSplitter {
	return &LineSplitter{Prefix: Prefix(node), Out: out}
}

// Write splits p into lines; it never fails.
func (l *LineSplitter) Write(p []byte) (int, error) {
	n := len(p)
	limit := l.Max
	if limit <= 0 {
		limit = MaxLine
	}
	for len(p) > 0 {
		room := limit - len(l.buf)
		// A newline within room+1 bytes ends a line of at most limit bytes.
		if i := bytes.IndexByte(p[:min(len(p), room+1)], '\n'); i >= 0 {
			l.buf = append(l.buf, p[:i]...)
			p = p[i+1:]
			l.emit()
			continue
		}
		if len(p) <= room {
			l.buf = append(l.buf, p...)
			break
		}
		// More than limit bytes without a newline: cut.
		l.buf = append(l.buf, p[:room]...)
		p = p[room:]
		l.emit()
	}
	return n, nil
}

// Flush hands over what is left as a last line.
func (l *LineSplitter) Flush() {
	if len(l.buf) > 0 {
		l.emit()
	}
}

func (l *LineSplitter) emit() {
	line := make([]byte, 0, len(l.Prefix)+len(l.buf)+1)
	line = append(line, l.Prefix...)
	line = append(line, l.buf...)
	line = append(line, '\n')
	l.Out(line)
	l.buf = l.buf[:0]
}

// TailMark is put in front of a stderr tail that lost its beginning.
const TailMark = "[...]"

// Tail keeps the last MaxStderr bytes written to it.
type Tail struct {
	buf []byte
	cut bool
}

// Write keeps the tail of what was written; it never fails.
func (t *Tail) Write(p []byte) (int, error) {
	if len(p) >= MaxStderr {
		t.cut = t.cut || len(t.buf) > 0 || len(p) > MaxStderr
		t.buf = append(t.buf[:0], p[len(p)-MaxStderr:]...)
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - MaxStderr; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.cut = true
	}
	return len(p), nil
}

// String returns the tail, marked with TailMark when its beginning was cut.
func (t *Tail) String() string {
	if t.cut {
		return TailMark + string(t.buf)
	}
	return string(t.buf)
}
