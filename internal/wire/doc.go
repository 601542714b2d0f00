// Package wire is the home of every format that crosses a process boundary
// between keel-relay, keel-agent, the edge daemons and Rudder: the shared-file
// signature block (sigblock), time-to-live (ttl), node and file ids (ids), node
// key pins (keyhash), signed GET requests (reqauth), the edge gRPC messages
// (edgepb), their signed envelopes (envelope), tokens (edgetoken) and
// capability bounds (capabilities), and the run-output lines (runoutput).
//
// The packages below it import nothing of Keel but each other, so the agent can
// use them without pulling in the daemon (no store, no Badger). A change here is
// a protocol change for agents already deployed: read the specs first.
package wire
