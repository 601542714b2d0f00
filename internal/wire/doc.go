// Package wire is the home of every format that crosses a process boundary
// between keel-relay, keel-agent, the edge daemons and Rudder: the shared-file
// signature block (sigblock), time-to-live (ttl), node and file ids (ids), node
// key pins (keyhash), signed GET requests (reqauth), the shared-files URL path
// (sharedpath), the edge gRPC messages (edgepb, with MinKeepalive), their signed
// envelopes (envelope), tokens (edgetoken) and capability bounds (capabilities),
// the class lists of agent runs (classlist), the run-output lines
// (runoutput) that remote run, the edge runner and the operator API stream, and
// the names of agents' uploads (uploadname).
//
// The packages below it import nothing of Keel but each other, so the agent can
// use them without pulling in the daemon (no store, no Badger). A change here is
// a protocol change for agents already deployed: read the specs first.
package wire
