#!/usr/bin/env bash
# Checks the Prometheus alert rules with promtool (make package-test runs it). promtool comes
# from PATH, or from Debian's prometheus package, downloaded (not installed: no service, no
# dependencies) and unpacked in a temporary directory. Where neither can be had, it says so and
# passes: the Go test TestMonitoringUsesKnownSeries (package relay) still parses the rules and
# checks their series against the relay's golden /metrics.
set -euo pipefail
cd "$(dirname "$0")"
rules=keel-relay.rules.yml

promtool=$(command -v promtool || true)
if [ -z "$promtool" ] && command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	if (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; }; }); then
		dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp" ./usr/bin/promtool
		promtool=$tmp/usr/bin/promtool
	fi
fi
if [ -z "$promtool" ]; then
	echo "check-rules: no promtool here (nor Debian's prometheus package): skipped; the Go test checks the rules' series" >&2
	exit 0
fi
"$promtool" --version 2>&1 | head -1
"$promtool" check rules "$rules"
