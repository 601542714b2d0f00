package server

import (
	"context"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func healthStatus(t *testing.T, h *harness, service string) string {
	t.Helper()
	resp, err := healthpb.NewHealthClient(h.conn).Check(ctxT(t), &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return "error: " + err.Error()
	}
	return resp.Status.String()
}

func checkHealth(t *testing.T, h *harness, want string) {
	t.Helper()
	for _, svc := range []string{"", ServiceName} {
		if got := healthStatus(t, h, svc); got != want {
			t.Fatalf("health(%q) = %s, want %s", svc, got, want)
		}
	}
}

// TestHealthAndDrain: SERVING, then on Shutdown NOT_SERVING while the streams get Drain and
// the commands in flight finish within the grace.
func TestHealthAndDrain(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.DrainGrace = 10 * time.Second })
	checkHealth(t, h, "SERVING")
	d := enrolled(t, h)
	st := d.connect(t)
	res := h.invokeAsync(ctxT(t), d.id, time.Minute)
	cmd := st.nextCommand(t).GetInvokeTool()

	stopped := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		h.srv.Shutdown(ctx)
		close(stopped)
	}()
	if c := st.nextCommand(t); c.GetDrain() == nil {
		t.Fatalf("got %v, want Drain", c)
	}
	checkHealth(t, h, "NOT_SERVING")
	// New work is refused while draining.
	_, _, err := newDaemon(h).attest(ctxT(t))
	if err == nil {
		t.Fatal("attestation accepted while draining")
	}
	select {
	case <-stopped:
		t.Fatal("Shutdown did not wait for the command in flight")
	case <-time.After(100 * time.Millisecond):
	}
	if err := st.s.Send(st.sealed(result(cmd.CommandId, 0))); err != nil {
		t.Fatal(err)
	}
	if o := <-res; o.err != nil || o.res.GetOk() == nil {
		t.Fatalf("invoke = %+v", o)
	}
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatal("Shutdown did not finish")
	}
	st.endCode(t)
}
