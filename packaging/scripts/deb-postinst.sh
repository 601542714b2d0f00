#!/bin/sh
# keel-relay postinst (deb): enable the unit on first install (an administrator's disable is
# remembered across upgrades by deb-systemd-helper), then, when systemd is running, start it or
# restart it after an upgrade. A service that fails to start never fails the install.
set -e

case "$1" in
configure|abort-upgrade|abort-deconfigure|abort-remove)
	if command -v deb-systemd-helper >/dev/null; then
		# Undo the mask the postrm puts on a removed (not purged) package.
		deb-systemd-helper unmask keel-relay.service >/dev/null || true
		if deb-systemd-helper --quiet was-enabled keel-relay.service; then
			deb-systemd-helper enable keel-relay.service >/dev/null || true
		else
			deb-systemd-helper update-state keel-relay.service >/dev/null || true
		fi
	fi
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -n "$2" ]; then
			action=restart
		else
			action=start
		fi
		deb-systemd-invoke "$action" keel-relay.service >/dev/null || true
	fi
	;;
esac
exit 0
