#!/bin/sh
# keel-relay postrm (deb). remove: the config and the data in /var/lib/keel-relay stay.
# purge: dpkg deletes /etc/keel/relay.yaml (a conffile); the data directory and what dpkg left
# next to the config go too. The keel account stays (Debian policy: its files may live on).
set -e

if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi

case "$1" in
remove)
	if command -v deb-systemd-helper >/dev/null; then
		deb-systemd-helper mask keel-relay.service >/dev/null || true
	fi
	;;
purge)
	if command -v deb-systemd-helper >/dev/null; then
		deb-systemd-helper purge keel-relay.service >/dev/null || true
		deb-systemd-helper unmask keel-relay.service >/dev/null || true
	fi
	rm -rf /var/lib/keel-relay
	rm -f /etc/keel/relay.yaml.dpkg-old /etc/keel/relay.yaml.dpkg-dist \
		/etc/keel/relay.yaml.dpkg-new /etc/keel/relay.yaml.dpkg-tmp
	rmdir /etc/keel 2>/dev/null || true
	;;
esac
exit 0
