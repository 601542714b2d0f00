#!/bin/sh
# keel-relay %preun (rpm): on erase ($1 = 0), stop (the relay drains) and disable it.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
	systemctl disable --now keel-relay.service >/dev/null 2>&1 || :
fi
exit 0
