// Package edge is the relay's gRPC NodeClusterService edge extensions, in sub-packages with
// one job each: keys (the relay's signing key), ratelimit (AttestNode per source), quota (the
// pools of pending challenges), registry (live streams by node, with generations and one
// bounded writer each), dispatch (InvokeTool and its pending commands), fleet (which daemons
// an operator command targets, and the status words), server (the service, health,
// lifecycle, and the remote-run runner over live streams), admin (the operator HTTP API,
// which the daemon mounts on its admin listener) and edgesim (a real, disk-less daemon for
// tests and benchmarks).
//
// The formats edge shares with keel-agent (the .proto and its generated code, signed
// envelopes, tokens, capability bounds, run-output lines) live under internal/wire. Nothing
// here imports the relay HTTP API's packages (relay/...): the daemon's assembly, package
// relay, fills server.Options from its configuration and hands the runner to remote run.
package edge
