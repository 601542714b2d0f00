// Package rlimit is what the benchmark commands (bench/cmd/report, bench/cmd/edgeload) share
// about the process's resource limits: raising the open-file limit before opening thousands
// of connections. It is built on Linux only, as those commands are.
package rlimit
