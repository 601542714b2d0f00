#!/bin/sh
# keel-agent postrm (deb). remove: the config and /var/lib/keel-agent (the edge daemon's key and
# token) stay. purge: dpkg deletes /etc/keel/agent.yaml (a conffile); the state directory and
# what dpkg left next to the config go too.
set -e

if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi

case "$1" in
remove)
	if command -v deb-systemd-helper >/dev/null; then
		deb-systemd-helper mask keel-agent.service >/dev/null || true
	fi
	;;
purge)
	if command -v deb-systemd-helper >/dev/null; then
		deb-systemd-helper purge keel-agent.service >/dev/null || true
		deb-systemd-helper unmask keel-agent.service >/dev/null || true
	fi
	rm -rf /var/lib/keel-agent
	rm -f /etc/keel/agent.yaml.dpkg-old /etc/keel/agent.yaml.dpkg-dist \
		/etc/keel/agent.yaml.dpkg-new /etc/keel/agent.yaml.dpkg-tmp
	rmdir /etc/keel 2>/dev/null || true
	;;
esac
exit 0
