// Package httpapi is the front of the relay HTTP API: the routers of the relay API
// listener and of the admin listener, the middleware every request goes through (network
// access lists, metrics, the request log, and a 500 under a handler that returned without
// answering), and the system endpoints (status, info, reload, backup).
//
// Where a request goes: Handler routes /shared-files/ to package sharedfiles, /remote-run/
// to package remoterun and /system/ to the System the daemon's assembly (package relay)
// gives; AdminHandler serves /metrics, the local status, reload and backup, and mounts the
// edge operator API the assembly passes in. This package does not know the edge API: it
// only mounts an http.Handler.
//
// On the relay API listener, runs of slashes in a path collapse before routing
// (CollapseSlashes), and the system endpoints answer in relayd's envelope, as Rudder's tools
// read them (Envelope, ReloadSuccess); the admin listener keeps Keel's own documents.
package httpapi
