#!/bin/sh
# keel-relay %post (rpm). On first install ($1 = 1) the unit is enabled or not as the
# system's presets say (`systemctl preset`, as Fedora's and RHEL's %systemd_post does: their
# default preset disables what it does not list; a preset file can enable it), then started
# when systemd is running and the preset enabled it. Upgrades restart it in %postun, once the
# old files are gone. Never fails.
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
	systemctl --no-reload preset keel-relay.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -eq 1 ] && systemctl --quiet is-enabled keel-relay.service 2>/dev/null; then
		systemctl start keel-relay.service >/dev/null 2>&1 || :
	fi
fi
exit 0
