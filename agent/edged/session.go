package edged

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/keel-relay/keel/internal/wire/edgepb"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
)

// closeWait bounds how long the relay may take to end the stream after the daemon closed
// its side.
const closeWait = 5 * time.Second

// edgeStream is the daemon's side of a ConnectEdge stream.
type edgeStream = grpc.BidiStreamingClient[edgepb.EdgeEvent, edgepb.EdgeCommand]

// session runs one ConnectEdge stream until it ends. It returns errFinished when the
// daemon stopped and the stream was flushed and closed.
//
// Two goroutines serve the stream: read takes the relay's commands to handle, and the
// stream writer (writer.go) sends everything the daemon has to say.
func (d *Daemon) session(life context.Context) error {
	creds := d.currentCredentials(life)
	conn, err := dial(d.relay, d.edgeConfig())
	if err != nil {
		return err
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(life)
	defer cancel()
	connected := d.abortConnectOnStop(sctx, cancel)
	w, err := d.open(sctx, conn, creds)
	if err != nil {
		return err
	}
	close(connected)
	return d.serve(sctx, cancel, w)
}

// currentCredentials returns the credentials to open a stream with, reloaded first if the
// token file changed; it says so in the log when the token has expired.
func (d *Daemon) currentCredentials(life context.Context) *Credentials {
	d.reloadIfChanged(life)
	creds := d.Credentials()
	if time.Now().After(creds.Claims.Expiry) {
		d.log.Error("edge: the node security token has expired; rotate-key cannot renew it: enroll again (keel-agent edge enroll --force)",
			"expired", creds.Claims.Expiry)
	}
	return creds
}

// abortConnectOnStop cancels the session when the daemon finishes before the stream is
// up (the returned channel is closed): a stop must not wait for a hanging connection
// attempt. Once connected, the stream writer flushes and closes the stream instead.
func (d *Daemon) abortConnectOnStop(sctx context.Context, cancel context.CancelFunc) chan<- struct{} {
	connected := make(chan struct{})
	go func() {
		select {
		case <-d.finish:
			select {
			case <-connected:
			default:
				cancel()
			}
		case <-connected:
		case <-sctx.Done():
		}
	}()
	return connected
}

// open opens the stream with the token as bearer metadata and sends the Hello, which
// carries the current capabilities. It returns the stream's writer.
func (d *Daemon) open(sctx context.Context, conn grpc.ClientConnInterface, creds *Credentials) (*streamWriter, error) {
	md := metadata.Pairs(edgetoken.AuthorizationKey, edgetoken.Bearer(creds.Token))
	stream, err := edgepb.NewNodeClusterServiceClient(conn).ConnectEdge(metadata.NewOutgoingContext(sctx, md))
	if err != nil {
		return nil, fmt.Errorf("ConnectEdge: %w", err)
	}
	streamID := uuid.NewString()
	clearSignal(d.capsChanged) // the Hello carries the current capabilities
	caps := d.capabilities()
	w := &streamWriter{d: d, stream: stream, id: streamID}
	hello := &edgepb.EdgeEvent{Event: &edgepb.EdgeEvent_Hello{Hello: &edgepb.Hello{Capabilities: caps, StreamId: streamID}}}
	if err := w.send(hello); err != nil {
		return nil, fmt.Errorf("send Hello: %w", err)
	}
	d.log.Info("edge: connected", "relay", d.relay, "stream_id", streamID, "tools", caps.GetLocalTools())
	d.notified(d.opts.Notify.Status("connected to " + d.relay))
	return w, nil
}

// serve runs the reader and the writer of an open stream until either ends. When the
// writer ends because the daemon finished, the relay gets closeWait to end the stream.
func (d *Daemon) serve(sctx context.Context, cancel context.CancelFunc, w *streamWriter) error {
	writerDone := make(chan error, 1)
	readerDone := make(chan error, 1)
	go func() { writerDone <- w.run(sctx) }()
	go func() { readerDone <- d.read(sctx, w.stream) }()
	select {
	case err := <-readerDone:
		cancel()
		<-writerDone
		return err
	case err := <-writerDone:
		if errors.Is(err, errFinished) {
			t := time.NewTimer(closeWait)
			select {
			case <-readerDone:
			case <-t.C:
			}
			t.Stop()
			cancel()
			return errFinished
		}
		cancel()
		<-readerDone
		return err
	}
}

// read handles the relay's commands until the stream ends.
func (d *Daemon) read(ctx context.Context, stream edgeStream) error {
	for {
		cmd, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		d.handle(ctx, cmd)
	}
}

// handle acts on one command from the relay: InvokeTool and Cancel go to the jobs
// (jobs.go), PushConfig to the config (configpush.go), Drain and Shutdown to the stop
// coordinator (stop.go).
func (d *Daemon) handle(ctx context.Context, cmd *edgepb.EdgeCommand) {
	switch c := cmd.GetCommand().(type) {
	case *edgepb.EdgeCommand_InvokeTool:
		d.invoke(ctx, c.InvokeTool)
	case *edgepb.EdgeCommand_Cancel:
		d.cancelJob(c.Cancel.GetCommandId(), c.Cancel.GetReason())
	case *edgepb.EdgeCommand_PushConfig:
		d.pushConfig(c.PushConfig)
	case *edgepb.EdgeCommand_Drain:
		d.log.Info("edge: drain requested: finishing in-flight tools, then exiting")
		d.requestStop(-1, "drain")
	case *edgepb.EdgeCommand_Shutdown:
		grace := max(c.Shutdown.GetGrace().AsDuration(), 0)
		d.log.Info("edge: shutdown requested", "grace", grace)
		d.requestStop(grace, "shutdown")
	default:
		d.log.Warn("edge: unknown command from the relay; ignored")
	}
}
