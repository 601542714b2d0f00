#!/bin/sh
# keel-agent postinst (deb). The unit is not enabled on install: the edge daemon needs the node
# enrolled first (keel-agent edge enroll), then `systemctl enable --now keel-agent`. An
# administrator's enable is kept across upgrades, and a running agent is restarted after one.
set -e

case "$1" in
configure|abort-upgrade|abort-deconfigure|abort-remove)
	if command -v deb-systemd-helper >/dev/null; then
		# As dh_installsystemd --no-enable: keep an administrator's enable across upgrades,
		# never enable on a first install.
		if deb-systemd-helper debian-installed keel-agent.service; then
			# Undo the mask the postrm puts on a removed (not purged) package.
			deb-systemd-helper unmask keel-agent.service >/dev/null || true
			if deb-systemd-helper --quiet was-enabled keel-agent.service; then
				deb-systemd-helper enable keel-agent.service >/dev/null || true
			fi
		fi
		deb-systemd-helper update-state keel-agent.service >/dev/null || true
	fi
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -n "$2" ]; then
			deb-systemd-invoke try-restart keel-agent.service >/dev/null || true
		fi
	fi
	;;
esac
exit 0
