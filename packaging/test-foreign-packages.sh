#!/usr/bin/env bash
# test-foreign-packages.sh [DIST]: the ARM packages `make package` left in DIST (default dist),
# installed on this (other) machine and run under qemu-user, as root on a Debian-like machine
# (else skipped), for each of arm64 and armhf (armv7) that is not the machine's own:
#
#  - .deb: dpkg --add-architecture (undone at the end when this script added it), dpkg -i of
#    keel-relay and keel-agent for real (maintainer scripts included), then the installed
#    /usr/bin/keel-relay runs as the unit would (as keel, the packaged config, ports the kernel
#    picks) through qemu-<arch>-static named explicitly (no binfmt_misc needed), answers 200 on
#    /system/status and drains on SIGTERM; keel-agent's `version` names the platform; both
#    packages are purged.
#  - .rpm: its header names the rpm architecture (aarch64, armv7hl); `rpm -i --root` into a
#    temporary root (no scripts: they would run chrooted, where there is no shell) installs the
#    same binaries as the .deb (sha256) and `version` runs under qemu.
#
# It cleans up after itself and can be rerun. It never touches a keel-relay or keel-agent
# installed by someone else.
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/testlib.sh
dist=${1:-dist}
export RELAY_START_TIMEOUT=${RELAY_START_TIMEOUT:-120} # emulation is slow
marker=/var/lib/keel-relay/.keel-package-test

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
status_of() { # dpkg's status of package $1 (any architecture), empty when unknown
	dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true
}
tmp=$(mktemp -d)
added_arch= # the foreign architecture this script added to dpkg, to remove again
cleanup() {
	kill_relay
	local p
	for p in keel-relay keel-agent; do
		if [ -n "$added_arch" ] && [ -n "$(status_of "$p:$added_arch")" ] && [ "$(status_of "$p:$added_arch")" != not-installed ]; then
			dpkg -P "$p:$added_arch" >/dev/null || true
		fi
	done
	if [ -n "$added_arch" ]; then
		dpkg --remove-architecture "$added_arch" || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

if [ "$(id -u)" != 0 ] || ! command -v dpkg >/dev/null || ! command -v setpriv >/dev/null; then
	echo "note: not root, or no dpkg or setpriv: the ARM packages are not installed"
	exit 0
fi
native=$(dpkg --print-architecture)

for target in arm64:aarch64:qemu-aarch64-static:linux/arm64 armhf:armv7hl:qemu-arm-static:linux/arm; do
	IFS=: read -r debarch rpmarch qemu platform <<<"$target"
	[ "$debarch" != "$native" ] || { echo "note: $debarch is this machine's own: test-packages.sh installs it"; continue; }
	command -v "$qemu" >/dev/null || fail "$qemu not found (apt-get install qemu-user-static)"
	relay_deb=$(ls "$dist"/keel-relay_*_"$debarch".deb) || fail "no keel-relay .deb for $debarch in $dist (make package)"
	agent_deb=$(ls "$dist"/keel-agent_*_"$debarch".deb) || fail "no keel-agent .deb for $debarch in $dist (make package)"
	relay_rpm=$(ls "$dist"/keel-relay-*."$rpmarch".rpm) || fail "no keel-relay .rpm for $rpmarch in $dist (make package)"
	agent_rpm=$(ls "$dist"/keel-agent-*."$rpmarch".rpm) || fail "no keel-agent .rpm for $rpmarch in $dist (make package)"

	for p in keel-relay keel-agent; do
		s=$(status_of "$p")
		[ -z "$s" ] || [ "$s" = not-installed ] || fail "$p is installed on this machine ($s): not touching it"
	done
	if ! dpkg --print-foreign-architectures | grep -qx "$debarch"; then
		dpkg --add-architecture "$debarch"
		added_arch=$debarch
	fi

	echo "== dpkg -i $relay_deb $agent_deb ($platform)"
	dpkg -i "$relay_deb" "$agent_deb" </dev/null
	touch "$marker"
	[ "$(dpkg-query -W -f='${Architecture}' "keel-relay:$debarch")" = "$debarch" ] || fail "keel-relay:$debarch not installed"
	out=$("$qemu" /usr/bin/keel-agent version)
	echo "$out"
	case "$out" in "keel-agent "*" $platform)"*) ;; *) fail "keel-agent version does not say $platform" ;; esac
	runuser -u keel -- "$qemu" /usr/bin/keel-relay check-config --config /etc/keel/relay.yaml >/dev/null ||
		fail "check-config of the packaged config failed under $qemu"
	start_relay "$tmp/$debarch.log" setpriv --reuid=keel --regid=keel --init-groups -- \
		sh -c 'umask 0027; exec "$0" /usr/bin/keel-relay run --config /etc/keel/relay.yaml' "$qemu"
	expect_status_200
	stop_relay "$tmp/$debarch.log"
	[ -z "$(find /var/lib/keel-relay -mindepth 1 ! -user keel ! -path "$marker" -print -quit)" ] || fail "files in /var/lib/keel-relay not owned by keel"
	relay_sum=$(sha256sum </usr/bin/keel-relay)
	agent_sum=$(sha256sum </usr/bin/keel-agent)
	dpkg -P "keel-relay:$debarch" "keel-agent:$debarch" </dev/null
	[ ! -e /usr/bin/keel-relay ] && [ ! -e /var/lib/keel-relay ] || fail "after dpkg -P: keel-relay's files are still there"
	if [ "$added_arch" = "$debarch" ]; then
		dpkg --remove-architecture "$debarch"
		added_arch=
	fi
	echo "ok: $debarch .debs installed, relay ran under $qemu as keel (200, drained), purged"

	echo "== rpm -i --root (no scripts) $relay_rpm $agent_rpm"
	for pkg in "$relay_rpm" "$agent_rpm"; do
		got=$(rpm -qp --qf '%{ARCH}' "$pkg")
		[ "$got" = "$rpmarch" ] || fail "$pkg: architecture $got, want $rpmarch"
	done
	root=$tmp/root-$rpmarch
	mkdir -p "$root"
	rpm --root "$root" --initdb
	# The keel account and the packages' dependencies (shadow-utils) are not in this root:
	# rpm falls back to root ownership and says so.
	rpm --root "$root" -i --nodeps --noscripts --ignorearch "$relay_rpm" "$agent_rpm" 2>"$tmp/rpm.err" ||
		fail "rpm -i --root: $(cat "$tmp/rpm.err")"
	[ "$(sha256sum <"$root/usr/bin/keel-relay")" = "$relay_sum" ] || fail "$relay_rpm installs another keel-relay than the .deb"
	[ "$(sha256sum <"$root/usr/bin/keel-agent")" = "$agent_sum" ] || fail "$agent_rpm installs another keel-agent than the .deb"
	out=$("$qemu" "$root/usr/bin/keel-relay" version)
	echo "$out"
	case "$out" in *" $platform)"*) ;; *) fail "keel-relay version does not say $platform" ;; esac
	echo "ok: $rpmarch .rpms install the .debs' binaries, which run under $qemu"
done
echo "test-foreign-packages: PASS"
