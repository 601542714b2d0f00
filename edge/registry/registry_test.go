package registry

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/edgepb"
)

func drain() *edgepb.EdgeCommand {
	return &edgepb.EdgeCommand{Command: &edgepb.EdgeCommand_Drain{Drain: &edgepb.Drain{}}}
}

func TestReplaceAndCompareAndDelete(t *testing.T) {
	r := New(10, 4)
	now := time.Now()
	old, replaced, err := r.Register("n1", "s1", now)
	if err != nil || replaced != nil {
		t.Fatalf("Register: %v %v", replaced, err)
	}
	cur, replaced, err := r.Register("n1", "s2", now)
	if err != nil || replaced != old {
		t.Fatalf("second Register: replaced=%v err=%v", replaced, err)
	}
	if !errors.Is(old.Reason(), ErrReplaced) {
		t.Fatalf("old stream reason = %v, want ErrReplaced", old.Reason())
	}
	// The old stream's late close must not evict the new one.
	if r.Deregister(old, errors.New("late close")) {
		t.Fatal("late Deregister of the old stream removed the entry")
	}
	if got, ok := r.Get("n1"); !ok || got != cur {
		t.Fatal("new stream no longer registered after the old one closed")
	}
	if cur.Reason() != nil {
		t.Fatal("new stream closed by the old one's close")
	}
	if !r.Deregister(cur, ErrClosed) {
		t.Fatal("Deregister of the live stream failed")
	}
	if _, ok := r.Get("n1"); ok {
		t.Fatal("stream still registered")
	}
}

func TestMaxStreams(t *testing.T) {
	r := New(1, 1)
	if _, _, err := r.Register("a", "1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Register("b", "1", time.Now()); !errors.Is(err, ErrTooMany) {
		t.Fatalf("err = %v, want ErrTooMany", err)
	}
	if _, _, err := r.Register("a", "2", time.Now()); err != nil {
		t.Fatalf("replacement refused: %v", err)
	}
}

func TestSendQueueBoundedAndWriter(t *testing.T) {
	r := New(1, 2)
	s, _, _ := r.Register("a", "1", time.Now())
	if err := r.Send("x", drain()); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("send to unknown node: %v", err)
	}
	for range 2 {
		if err := s.Send(drain()); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := s.Send(drain()); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("err = %v, want ErrQueueFull", err)
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Fatal("a full queue blocked the sender")
	}
	var mu sync.Mutex
	var sent int
	s.Attach(func(*edgepb.EdgeCommand) error {
		mu.Lock()
		sent++
		mu.Unlock()
		return nil
	})
	deadline := time.After(5 * time.Second)
	for {
		mu.Lock()
		n := sent
		mu.Unlock()
		if n == 2 {
			break
		}
		select {
		case <-deadline:
			t.Fatal("writer did not send the queued commands")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if !s.WaitWriter(within(t, 5*time.Second)) {
		t.Fatal("writer still running with an empty queue")
	}
	// A command queued later starts the writer again.
	if err := s.Send(drain()); err != nil {
		t.Fatal(err)
	}
	if !s.WaitWriter(within(t, 5*time.Second)) || s.Queued() != 0 {
		t.Fatal("writer did not send the later command")
	}
	mu.Lock()
	n := sent
	mu.Unlock()
	if n != 3 {
		t.Fatalf("sent = %d, want 3", n)
	}
	s.Close(ErrClosed)
	if err := s.Send(drain()); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

// TestWriterOrderAndSingle checks that commands are sent in order by one writer at a time,
// with senders racing the writer's start and stop.
func TestWriterOrderAndSingle(t *testing.T) {
	r := New(1, 1000)
	s, _, _ := r.Register("a", "1", time.Now())
	var inSend []int
	var got []string
	var mu sync.Mutex
	var running int
	s.Attach(func(cmd *edgepb.EdgeCommand) error {
		mu.Lock()
		running++
		if running > 1 {
			inSend = append(inSend, running)
		}
		got = append(got, cmd.GetInvokeTool().GetCommandId())
		mu.Unlock()
		if len(got)%7 == 0 {
			time.Sleep(time.Millisecond)
		}
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	})
	for i := range 500 {
		cmd := &edgepb.EdgeCommand{Command: &edgepb.EdgeCommand_InvokeTool{InvokeTool: &edgepb.InvokeTool{CommandId: strconv.Itoa(i)}}}
		if err := s.Send(cmd); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			s.WaitWriter(within(t, time.Second))
		}
	}
	if !s.WaitWriter(within(t, 5*time.Second)) {
		t.Fatal("writer did not finish")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(inSend) > 0 {
		t.Fatalf("%d sends overlapped", len(inSend))
	}
	if len(got) != 500 {
		t.Fatalf("sent %d of 500", len(got))
	}
	for i, v := range got {
		if v != strconv.Itoa(i) {
			t.Fatalf("command %s sent at position %d", v, i)
		}
	}
}

func TestWriterSendError(t *testing.T) {
	r := New(1, 4)
	s, _, _ := r.Register("a", "1", time.Now())
	_ = s.Send(drain())
	_ = s.Send(drain())
	boom := errors.New("boom")
	s.Attach(func(*edgepb.EdgeCommand) error { return boom })
	if !s.WaitWriter(within(t, 5*time.Second)) {
		t.Fatal("writer did not stop")
	}
	if dropped := s.Queued(); dropped != 1 || !errors.Is(s.Reason(), boom) {
		t.Fatalf("dropped=%d reason=%v", dropped, s.Reason())
	}
	if err := s.Send(drain()); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after a failed send: %v", err)
	}
}

// TestWriterStopsAtClose checks that a writer blocked in a send is waited for only up to
// WaitWriter's context, and sends nothing more once the stream is closed.
func TestWriterStopsAtClose(t *testing.T) {
	r := New(1, 4)
	s, _, _ := r.Register("a", "1", time.Now())
	release := make(chan struct{})
	var sent atomic.Int32
	s.Attach(func(*edgepb.EdgeCommand) error {
		sent.Add(1)
		<-release
		return nil
	})
	_ = s.Send(drain())
	_ = s.Send(drain())
	for sent.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	s.Close(ErrClosed)
	if s.WaitWriter(within(t, 20*time.Millisecond)) {
		t.Fatal("WaitWriter returned true with the writer blocked in a send")
	}
	close(release)
	if !s.WaitWriter(within(t, 5*time.Second)) {
		t.Fatal("writer did not stop after its send returned")
	}
	if sent.Load() != 1 || s.Queued() != 1 {
		t.Fatalf("sent=%d queued=%d after close", sent.Load(), s.Queued())
	}
}

func TestEvictAndCloseAll(t *testing.T) {
	r := New(10, 1)
	a, _, _ := r.Register("a", "1", time.Now())
	b, _, _ := r.Register("b", "1", time.Now())
	if !r.Evict("a", ErrClosed) || r.Evict("a", ErrClosed) {
		t.Fatal("Evict")
	}
	if a.Reason() == nil {
		t.Fatal("evicted stream open")
	}
	if got := r.Streams(); len(got) != 1 || got[0] != b {
		t.Fatalf("Streams = %v", got)
	}
	r.CloseAll(ErrClosed)
	if r.Len() != 0 || b.Reason() == nil {
		t.Fatal("CloseAll left streams")
	}
}

func TestSeen(t *testing.T) {
	s := NewSeen()
	t0 := time.Unix(1000, 0)
	s.Touch("a", t0)
	s.Touch("a", t0.Add(-time.Second)) // older: ignored
	if got, _ := s.Get("a"); !got.Equal(t0) {
		t.Fatalf("Get = %v", got)
	}
	d := s.TakeDirty()
	if len(d) != 1 || s.TakeDirty() != nil {
		t.Fatalf("TakeDirty = %v", d)
	}
	s.Touch("a", t0.Add(time.Second))
	s.Restore(d) // older than the dirty one: the newer stays
	if got := s.TakeDirty()["a"]; !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("dirty after Restore = %v", got)
	}
	s.Restore(map[string]time.Time{"b": t0})
	if len(s.TakeDirty()) != 1 {
		t.Fatal("Restore lost an entry")
	}
	s.Forget("a")
	if _, ok := s.Get("a"); ok || len(s.Snapshot()) != 0 {
		t.Fatal("Forget")
	}
}

func TestConcurrentRegister(t *testing.T) {
	r := New(100, 1)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			s, _, err := r.Register("n", "s", time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			if i%2 == 0 {
				r.Deregister(s, ErrClosed)
			}
		})
	}
	wg.Wait()
	if r.Len() > 1 {
		t.Fatalf("Len = %d", r.Len())
	}
}

// within returns a context that ends after d (or with the test).
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
