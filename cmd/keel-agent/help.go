package main

// The help texts of keel-agent's commands and the prose of its man page; the command
// table itself is in main.go. packaging/keel-agent.1 is generated from both
// (`make man`; TestManPageFresh fails when it is stale).

import "github.com/keel-relay/keel/internal/cli"

const shareHelp = `Hashes PATH, asks the relay whether it already holds that content for TARGET under
FILE_ID, and only if not sends the signature block and the file, streamed. The relay keeps
it for --ttl (default 1d; e.g. 3600, 2h 30m, 1day).`

const hasHelp = `Exit 0 when the relay holds PATH's content for TARGET under FILE_ID, 1 when it does not,
2 on an error.`

const fetchHelp = `Downloads the file SOURCE shared with this node under FILE_ID into DEST, with a request
signed by the node's key. The content goes to a temporary file next to DEST, is checked
against the relay's hash (and --hash when given), and only then renamed onto DEST (mode
0600 unless --mode).`

const edgeHelp = `The edge daemon keeps a ConnectEdge stream to the relay (edge.relay) and runs what the
relay invokes. Enroll once (keel-relay edge enroll-token makes the token), then run it,
usually as the service.`

const enrollHelp = `Generate this node's edge key (edge.key_file, 0600), attest it to the relay with the
enrollment token (keel-relay edge enroll-token) and store the node security token it
issues (edge.token_file, 0600). --relay defaults to edge.relay; --force replaces an
existing key; --token - reads the token from standard input.`

const edgeRunHelp = `Keep the ConnectEdge stream to edge.relay up and run what the relay invokes (agent-run,
and shell when edge.tools.shell.enabled). Stops on SIGINT/SIGTERM, or when the relay sends
Drain or Shutdown (exit 0).`

const serviceHelp = `Manage keel-agent as a system service where no package unit exists (Windows): the
service runs the edge daemon.`

// agentMan is the man page's prose around the command table.
var agentMan = cli.Man{
	Title: "node agent of a Keel relay: shares and fetches signed files",
	Description: `.B keel-agent
runs on a managed node. It shares files with other nodes through the node's relay
(the Rudder relay API served by
.BR keel-relay ),
signing them with the node's RSA key as Rudder agents do, and fetches the files other
nodes shared with it. Its service runs the edge daemon, which keeps a stream to the relay.
`,
	Sections: `.SH FILES
.TP
.I /etc/keel/agent.yaml
The configuration: node_id (else read from /opt/rudder/etc/uuid.hive), relay_url,
key_file (default /var/rudder/cfengine-community/ppkeys/localhost.priv), the edge section.
Environment variables KEEL_AGENT_<SECTION>_<KEY> override it.
.TP
.I /var/lib/keel-agent
The edge daemon's key and token.
.TP
.IR /usr/share/bash-completion/completions/keel-agent ", " /usr/share/zsh/vendor-completions/_keel-agent
Shell completion, as printed by
.BR "keel-agent completion bash" " and " zsh
(on RPM systems the zsh one is in
.IR /usr/share/zsh/site-functions ).
`,
	SeeAlso: ".BR keel-relay (1)\n",
}
