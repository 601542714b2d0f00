package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-relay/keel/internal/membudget"
)

// progress reports the bytes a backup or restore has moved, and its rate, on a writer
// (stderr) every interval: on one line rewritten in place on a terminal, a line each
// otherwise. done prints the total.
type progress struct {
	out      io.Writer
	verb     string
	tty      bool
	start    time.Time
	n        atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
	finished sync.Once
}

// progressInterval is how often progress speaks.
const progressInterval = time.Second

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// startProgress starts reporting on out when it is a terminal or when forced (--progress);
// otherwise it returns nil, whose methods do nothing but count through.
func startProgress(out io.Writer, verb string, forced bool, every time.Duration) *progress {
	tty := isTerminal(out)
	if !tty && !forced {
		return nil
	}
	p := &progress{out: out, verb: verb, tty: tty, start: time.Now(), stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.print(false)
			case <-p.stop:
				return
			}
		}
	}()
	return p
}

// print writes the state: bytes so far and the average rate.
func (p *progress) print(final bool) {
	n, el := p.n.Load(), time.Since(p.start)
	rate := int64(0)
	if el > 0 {
		rate = int64(float64(n) / el.Seconds())
	}
	line := fmt.Sprintf("%s: %s, %s/s, %s", p.verb, membudget.FormatBytes(n), membudget.FormatBytes(rate), el.Round(time.Second))
	switch {
	case p.tty && final:
		fmt.Fprintf(p.out, "\r\033[K%s\n", line)
	case p.tty:
		fmt.Fprintf(p.out, "\r\033[K%s", line)
	default:
		fmt.Fprintln(p.out, line)
	}
}

// done stops the reports and prints the total (once).
func (p *progress) done() {
	if p == nil {
		return
	}
	p.finished.Do(func() {
		close(p.stop)
		p.wg.Wait()
		p.print(true)
	})
}

// writer counts what goes through w.
func (p *progress) writer(w io.Writer) io.Writer {
	if p == nil {
		return w
	}
	return countingWriter{w: w, n: &p.n}
}

// reader counts what is read from r. A seekable r stays seekable (a restore from a file
// verifies it whole before it loads it), and the count is then the position in it.
func (p *progress) reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	if rs, ok := r.(io.ReadSeeker); ok {
		return countingReadSeeker{countingReader{r: r, n: &p.n}, rs}
	}
	return countingReader{r: r, n: &p.n}
}

type countingReadSeeker struct {
	countingReader
	s io.Seeker
}

func (c countingReadSeeker) Seek(off int64, whence int) (int64, error) {
	pos, err := c.s.Seek(off, whence)
	if err == nil {
		c.n.Store(pos)
	}
	return pos, err
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// backupSource is the backup a restore reads: a file, or stdin ("-").
type backupSource struct {
	r     io.Reader
	close func() error
}

// Close closes the file (stdin is left open).
func (b backupSource) Close() error { return b.close() }

// openBackup opens the backup at path, or stdin for "-". Stdin is read once, as a stream
// (it cannot be verified whole first: restore refuses --force with it).
func openBackup(path string) (backupSource, error) {
	if path == "-" {
		return backupSource{r: struct{ io.Reader }{os.Stdin}, close: func() error { return nil }}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return backupSource{}, err
	}
	return backupSource{r: f, close: f.Close}, nil
}
