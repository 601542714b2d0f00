// Package agent will hold keel-agent, the node-side companion: signing and sharing files,
// checking and fetching them, and the edge daemon loop. It imports only the wire packages
// under relay/wire, never the daemon's internals.
package agent
