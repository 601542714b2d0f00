package relaytest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Raw HTTP/1.1 clients, for what net/http's client never does: pipelining, half-closing,
// sending a body piece by piece from a chosen loopback address. Nothing here calls t.Fatal
// from another goroutine: the functions that may run in any goroutine return errors.

// RawRequest lays out one HTTP/1.1 request, with a Content-Length when body is not nil.
func RawRequest(method, path string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: relay\r\n", method, path)
	if body != nil {
		fmt.Fprintf(&b, "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// RawAnswer is an answer read from a raw connection.
type RawAnswer struct {
	Code   int
	Header http.Header
	Body   string
	// After is the time from the start of the request (or upload) to the answer.
	After time.Duration
	// Err is why no answer could be read (Code is 0 then).
	Err error
}

// PipelineHalfClose sends reqs (complete requests, see RawRequest) in one write on one
// connection to addr, half-closes it (shutdown(SHUT_WR), as a client that has nothing more to
// send does), and reads the answers in order until there is one per request, the connection
// ends, or 20 seconds pass. The last answer holds the error that ended the reading, if any.
func PipelineHalfClose(addr string, reqs ...[]byte) []RawAnswer {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return []RawAnswer{{Err: err}}
	}
	defer c.Close()
	if _, err := c.Write(bytes.Join(reqs, nil)); err != nil {
		return []RawAnswer{{Err: err}}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return []RawAnswer{{Err: err}}
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	var answers []RawAnswer
	for len(answers) < len(reqs) {
		method, _, _ := strings.Cut(string(reqs[len(answers)]), " ")
		a := readAnswer(br, method, start)
		answers = append(answers, a)
		if a.Err != nil {
			break
		}
	}
	return answers
}

// readAnswer reads one answer to a request with method from br.
func readAnswer(br *bufio.Reader, method string, start time.Time) RawAnswer {
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return RawAnswer{Err: fmt.Errorf("reading the answer: %w", err), After: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return RawAnswer{Err: fmt.Errorf("reading the answer's body: %w", err), After: time.Since(start)}
	}
	return RawAnswer{Code: resp.StatusCode, Header: resp.Header, Body: string(b), After: time.Since(start)}
}

// DialFrom opens a TCP connection to addr from the local address from (any of 127.0.0.0/8 is
// loopback on Linux: distinct addresses are distinct clients to the relay).
func DialFrom(addr, from string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// RawUpload is a PUT sent piece by piece over its own connection.
type RawUpload struct {
	Conn net.Conn
	// Answer receives the relay's answer, once.
	Answer <-chan RawAnswer
}

// StartRawUpload starts a PUT of body (with its Content-Length) to path on addr from the local
// address from: the request head and the first n bytes at once, then the rest in pieces of
// piece bytes every pace, until all is sent or the relay answers. The connection is closed
// when the test ends.
func StartRawUpload(t testing.TB, addr, from, path string, body []byte, n, piece int, pace time.Duration) *RawUpload {
	t.Helper()
	c, err := DialFrom(addr, from)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	head := fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: relay\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", path, len(body))
	if _, err := c.Write(append([]byte(head), body[:n]...)); err != nil {
		t.Fatalf("PUT %s: %v", path, err)
	}
	answer := make(chan RawAnswer, 1)
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		answer <- readAnswer(bufio.NewReader(c), http.MethodPut, start)
	}()
	go func() {
		for rest := body[n:]; len(rest) > 0; {
			select {
			case <-answered:
				return
			case <-time.After(pace):
			}
			k := min(piece, len(rest))
			if _, err := c.Write(rest[:k]); err != nil {
				return
			}
			rest = rest[k:]
		}
	}()
	return &RawUpload{Conn: c, Answer: answer}
}

// Wait returns the upload's answer, or fails the test after timeout.
func (u *RawUpload) Wait(t testing.TB, timeout time.Duration) RawAnswer {
	t.Helper()
	select {
	case a := <-u.Answer:
		return a
	case <-time.After(timeout):
		t.Fatalf("no answer to an upload after %s", timeout)
		return RawAnswer{}
	}
}

// BlockLen returns the length of a PUT body's signature block with its empty line ("\n\n").
func BlockLen(body []byte) int {
	return bytes.Index(body, []byte("\n\n")) + 2
}
