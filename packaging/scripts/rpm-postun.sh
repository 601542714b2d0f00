#!/bin/sh
# keel-relay %postun (rpm): after an upgrade ($1 >= 1), restart the relay if it was running.
# An erase keeps /var/lib/keel-relay (rpm has no purge; remove it by hand) and saves a changed
# /etc/keel/relay.yaml as relay.yaml.rpmsave.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart keel-relay.service >/dev/null 2>&1 || :
	fi
fi
exit 0
