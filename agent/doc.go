// Package agent is keel-agent's library, the node-side companion of keel-relay:
// it assembles, from the agent configuration (agent/config), the node's
// identity (its id and RSA key, internal/nodekey) and a shared-files client
// (agent/sharedfile) for share, has and fetch; the edge daemon lives in
// agent/edged. It imports only the wire formats under internal/wire and small
// helpers under internal/, never the daemon's packages (relay/, edge/, storage/).
package agent
