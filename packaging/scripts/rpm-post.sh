#!/bin/sh
# keel-relay %post (rpm): on first install ($1 = 1), enable and start the relay when systemd
# is running. Upgrades restart it in %postun, once the old files are gone. Never fails.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -eq 1 ]; then
		systemctl enable --now keel-relay.service >/dev/null 2>&1 || :
	fi
fi
exit 0
