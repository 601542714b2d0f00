#!/bin/sh
# keel-relay preinstall (deb preinst, rpm %pre): create the keel system account when it is
# missing. systemd-sysusers would create it from /usr/lib/sysusers.d/keel-relay.conf, but only
# after unpacking, and the files need their group while they are unpacked; some systems have no
# systemd-sysusers at all. An existing account is left as it is.
set -e

if ! getent group keel >/dev/null; then
	groupadd --system keel
fi
if ! getent passwd keel >/dev/null; then
	nologin=/usr/sbin/nologin
	[ -x "$nologin" ] || nologin=/sbin/nologin
	useradd --system --gid keel --home-dir /var/lib/keel-relay --no-create-home \
		--shell "$nologin" --comment "Keel relay" keel
fi
exit 0
