// Package edge is the relay's gRPC NodeClusterService edge extensions, in sub-packages with
// one job each: edgepb (the .proto and its generated code, `make proto`), envelope and
// edgetoken (the wire formats both the relay and keel-agent use: signed envelopes, EdDSA
// JWTs), keys (the relay's signing key), ratelimit (AttestNode per source), registry (live
// streams by node, with generations and one bounded writer each), dispatch (InvokeTool and
// its pending commands, fleets), server (the service, health, lifecycle), admin (the
// operator HTTP API on the admin listener) and edgesim (a real, disk-less daemon for tests
// and benchmarks).
package edge
