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
package edged
