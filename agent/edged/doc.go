// Package edged is keel-agent's edge daemon: it enrolls the node with a relay
// (AttestNode, ChallengeNode), keeps the ConnectEdge stream up, and runs the tools the
// relay invokes on it (SPEC-edge-grpc.md, "keel-agent as an edge daemon").
//
// The daemon's credentials are an Ed25519 key (PEM PKCS#8, edge.key_file, 0600) and the
// NodeSecurityToken the relay bound to it (edge.token_file, 0600). Both are replaced
// atomically, and in an order a crash cannot break: see [Enroll] and [RotateKey].
//
// [Daemon.Run] opens the stream with the token as bearer metadata, sends a Hello, then a
// Heartbeat every edge.heartbeat_interval; every event is sealed with the node key
// (package envelope). When the stream ends it reconnects after an exponential delay with
// full jitter ([Backoff]). Before the token expires the daemon rotates its key, which is
// how the relay issues a new token (the spec has no refresh RPC). Commands: InvokeTool
// runs agent-run or shell in its own process group with its output streamed as
// CommandProgress; Cancel, Drain, Shutdown and PushConfig are honoured.
//
// # Files
//
// The running daemon:
//   - daemon.go: Options, the Daemon type, Run and its reconnect loop.
//   - session.go: one ConnectEdge stream: open it, send the Hello, read the relay's
//     commands and hand each to its handler (Daemon.handle).
//   - writer.go: the one goroutine that seals and sends events on a stream.
//   - jobs.go: InvokeTool and Cancel: admit a tool, run it, queue its output and result.
//   - result.go: the EdgeResult of a tool.
//   - configpush.go: PushConfig, the merged config and the capabilities it declares.
//   - stop.go: the stop coordinator (Drain, Shutdown, the agent stopping).
//   - refresh.go: the credentials in use: reloaded when the token file changes,
//     refreshed before the token expires.
//
// Enrollment and credentials: credentials.go (the files, loading them and recovering an
// interrupted change), enroll.go (Enroll, the capabilities), rotate.go (RotateKey); the key
// files (keyfile.go, over internal/edkey and internal/fsutil's durable writes) and the file
// lock (lock_*.go) live beside them. Tools: tools.go resolves a tool and runs it in its own
// process group (internal/procgroup; shell_*.go picks the shell). Connection:
// dial.go (transport), backoff.go (reconnection delays). Config deltas: delta.go.
//
// A command's path: session.go read → handle → jobs.go invoke → runJob → execute →
// runProcess (tools.go), whose output goes through progress and enqueue to d.out, which
// writer.go sends; the result follows the same way.
package edged
