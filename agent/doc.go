// Package agent is keel-agent's library, the node-side companion of keel-relay:
// it assembles, from the agent configuration (agent/config), the node's
// identity (its id and RSA key, agent/nodekey) and a shared-files client
// (agent/sharedfile) for share, has and fetch. The edge daemon loop is to live
// beside them. It imports only the wire packages under relay/wire, never the
// daemon's internals.
package agent
