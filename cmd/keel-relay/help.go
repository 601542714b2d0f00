package main

// The help texts of keel-relay's commands and the prose of its man page; the command
// table itself is in main.go. packaging/keel-relay.1 is generated from both
// (`make man`; TestManPageFresh fails when it is stale).

import "github.com/keel-relay/keel/internal/cli"

const runHelp = `Serve in the foreground until SIGTERM or SIGINT, then drain: new connections are
refused, requests in flight get shutdown_grace to finish, the store is closed, and the
exit status is 0. A second stop signal exits at once (status 1).

SIGHUP re-reads the configuration, the node map, the node client certificates and the
TLS key pairs of the API and edge listeners without dropping connections; a key pair or
certificate bundle that does not load leaves the one in force. "keel-relay reload" does the
same and waits for the outcome (the systemd unit's ExecReload). Under systemd the relay
says when it is ready, reloading and stopping (Type=notify) and feeds the watchdog.`

const backupHelp = `Write a backup of the whole store to FILE (mode 0600, written through a temporary
file). When the relay is running (the store is locked) the backup is taken through its
admin listener (admin.listen, with the token of admin.token_file).`

const restoreHelp = `Load a backup into the store of a stopped relay; --force replaces the data already
there. The edge signing key saved in the backup is restored next to the store.`

const serviceHelp = `Register the relay with the system's service manager, or control that service.
On Windows this is the way to run it; on Linux the package's systemd unit is.
--user (Linux and Unix) is the account the service runs as (default keel; it must
exist). On Windows the service runs as LocalSystem and logs to the Application event log.`

const edgeHelp = `Edge daemons (keel-agent edge run) keep a stream to this relay. enroll-token makes the
token a daemon enrolls with; the other commands talk to the running relay's admin
listener: --config FILE (admin.listen, its token admin.token_file) or --admin HOST:PORT.`

const uploadsHelp = `Lists the agents' uploads (inventories, inventory updates, reports) this relay keeps for
its upstream, oldest first: those waiting for delivery, or with --failed those kept aside
(a report of a node not in the node map, an upload the relay could not read). It asks the
running relay's admin listener (admin.listen, with the token of admin.token_file).`

const reloadHelp = `Asks the running relay to re-read its config, node map and TLS certificates (POST /reload on
admin.listen, with the token of admin.token_file) and waits for the outcome: exit 0 when
everything was reloaded, 1 with the reason when something was refused (the relay keeps
serving with what was in force) or the relay could not be reached. The systemd unit's
ExecReload runs it, so that systemctl reload fails, with the reason, on a refused config.`

const inspectHelp = `Looks inside the relay: status, the shared files stored, the forward queue (retry or drop
a queued forward), the node map and where a file for a node is routed. Each takes
--config FILE or --admin HOST:PORT. On a stopped relay they read its data_dir (and
nodes_file); while it runs (the store is locked) they ask its admin listener (admin.listen,
with the token of admin.token_file). --admin always asks the listener. --json prints the
documents the admin API answers.`

// relayMan is the man page's prose around the command table.
var relayMan = cli.Man{
	Title: "relay daemon for configuration-management fleets (Rudder relay API)",
	Description: `.B keel-relay
sits between an upstream policy server and the nodes of a site and serves the
Rudder relay API: nodes share signed files with each other through it, and it
forwards what is not for its own nodes to the next hop, down to a sub-relay or up
to the policy server, through a persistent store-and-forward queue.
Everything it keeps lives in an embedded database under its data directory.
Nothing is downloaded at install or run time.
.PP
On a Rudder relay it can also replace rudder-relayd and the Apache relay front:
with
.B http.tls_cert
and
.B http.tls_key
pointing at the agent's key pair it speaks TLS (1.3, 1.2 allowed) with the key the
nodes pinned, checks optional node client certificates against
.BR tls.node_certs ,
takes agents' inventory and report uploads and delivers them upstream, and serves
.IR /uuid ,
the shared folder and policies;
.B http.local_listen
(e.g. 127.0.0.1:3030, where Rudder's tools call relayd) serves the same API in plain HTTP.
.B POST /rudder/relay-api/1/system/reload
answers relayd's exact
.B {"result":"success","action":"reloadConfiguration"}
and
.B system/status
and
.B system/info
relayd's
.B {"data":...,"result":"success","action":...}
envelope.
See "Replacing rudder-relayd" in the README.
.PP
The package runs it as the systemd service
.BR keel-relay.service ,
as user
.BR keel .
`,
	Sections: `.SH OPTIONS
.TP
.BI \-\-config " file"
The configuration file.
Without it,
.I /etc/keel/relay.yaml
is read if it exists, else the embedded default (loopback listeners, data in
.IR ./keel-data ).
.SH ENVIRONMENT
Every configuration key can be overridden as
.BI KEEL_ SECTION _ KEY\fR,\fP
for example
.B KEEL_HTTP_LISTEN=0.0.0.0:3030
or
.BR KEEL_LOG_LEVEL=debug ;
lists are comma-separated.
.SH FILES
.TP
.I /etc/keel/relay.yaml
The configuration; every key is described in it.
.TP
.I /var/lib/keel-relay
The data directory of the packaged relay.
.TP
.IR /var/rudder/cfengine-community/ppkeys/localhost.priv ", " /opt/rudder/etc/ssl/agent.cert
On a Rudder relay box, the TLS key pair
.RB ( http.tls_key ", " http.tls_cert ).
.TP
.IR /var/rudder/lib/ssl/nodescerts.pem
The node client certificates accepted
.RB ( tls.node_certs ).
.TP
.IR /opt/rudder/etc/htpasswd-webdav-initial ", " /opt/rudder/etc/htpasswd-webdav
The upload credentials
.RB ( agent_uploads.htpasswd_initial ", " agent_uploads.htpasswd ).
.TP
.IR /var/rudder/lib/relay/nodeslist.json
The node map
.RB ( nodes_file ).
.TP
.IR /usr/share/bash-completion/completions/keel-relay ", " /usr/share/zsh/vendor-completions/_keel-relay
Shell completion, as printed by
.BR "keel-relay completion bash" " and " zsh
(on RPM systems the zsh one is in
.IR /usr/share/zsh/site-functions ).
.TP
.I /usr/lib/systemd/system/keel-relay.service
The systemd unit; change it with
.BR "systemctl edit keel-relay" .
It sets
.BR MemoryMax=128M ,
the memory budget the relay sizes itself to with
.B memory.limit: auto
(a smaller
.B memory.limit
may be configured; a larger one is not used).
`,
	SeeAlso: `.BR keel-agent (1),
.BR systemctl (1),
.BR journalctl (1),
.I /usr/share/doc/keel-relay/README.md
`,
}
