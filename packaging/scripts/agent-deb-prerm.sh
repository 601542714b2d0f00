#!/bin/sh
# keel-agent prerm (deb): stop the agent before its files go. On upgrade it keeps running until
# the postinst of the new version restarts it.
set -e

if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	deb-systemd-invoke stop keel-agent.service >/dev/null || true
fi
exit 0
