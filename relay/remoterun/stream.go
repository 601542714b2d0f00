package remoterun

import (
	"net/http"
	"sync"
)

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
