#!/bin/sh
# keel-agent %preun (rpm): on erase ($1 = 0), stop and disable it.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
	systemctl disable --now keel-agent.service >/dev/null 2>&1 || :
fi
exit 0
