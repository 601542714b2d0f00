#!/bin/sh
# keel-agent %postun (rpm): after an upgrade ($1 >= 1), restart the agent if it was running.
# An erase keeps /var/lib/keel-agent (rpm has no purge; remove it by hand) and saves a changed
# /etc/keel/agent.yaml as agent.yaml.rpmsave.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart keel-agent.service >/dev/null 2>&1 || :
	fi
fi
exit 0
