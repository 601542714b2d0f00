#!/usr/bin/env bash
# test-agent-package.sh [DIST]: checks the keel-agent packages `make package` left in DIST
# (default dist), as test-packages.sh does for keel-relay.
#
#  1. Inspects every keel-agent .deb and .rpm (file list with owners and modes, conffiles,
#     scripts) and runs lintian and rpmlint on them with our overrides; errors fail.
#  2. As root (else skipped), on a Debian-like machine: installs the .deb of this machine's
#     architecture for real, checks files, owners and modes and that the unit is not enabled
#     (the node must enroll first), runs check-config and version, upgrades to a rebuilt
#     package (release + 1) with a locally changed config that must be kept, removes it
#     (config and edge state kept) and purges it (both gone).
#
# It cleans up after itself and can be rerun. It never touches a keel-agent installed by
# someone else: a package it did not install (no marker in /var/lib/keel-agent) stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/testlib.sh
dist=${1:-dist}
marker=/var/lib/keel-agent/.keel-package-test

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
need() {
	command -v "$1" >/dev/null || fail "$1 not found ($2)"
}
installed() { # known to dpkg: installed, or removed with its config left
	local s
	s=$(dpkg-query -W -f='${db:Status-Status}' keel-agent 2>/dev/null) || return 1
	[ -n "$s" ] && [ "$s" != not-installed ]
}
tmp=$(mktemp -d)
ours=0
cleanup() {
	if [ "$ours" = 1 ] && installed; then
		dpkg -P keel-agent >/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

shopt -s nullglob
debs=("$dist"/keel-agent_*.deb)
rpms=("$dist"/keel-agent-*.rpm)
shopt -u nullglob
[ ${#debs[@]} -gt 0 ] || fail "no keel-agent .deb in $dist (make package)"
[ ${#rpms[@]} -gt 0 ] || fail "no keel-agent .rpm in $dist (make package)"

# --- 1. inspect and lint -------------------------------------------------------------------
need dpkg-deb "apt-get install dpkg"
for deb in "${debs[@]}"; do
	echo "== $deb"
	dpkg-deb -I "$deb"
	contents=$(dpkg-deb -c "$deb" | sed 's| 0/0 | root/root |')
	echo "$contents"
	for want in '-rwxr-xr-x root/root ./usr/bin/keel-agent' \
		'-rw-r--r-- root/root ./etc/keel/agent.yaml' \
		'-rw-r--r-- root/root ./usr/lib/systemd/system/keel-agent.service' \
		'drwx------ root/root ./var/lib/keel-agent/' \
		'-rw-r--r-- root/root ./usr/share/man/man1/keel-agent.1.gz' \
		'-rw-r--r-- root/root ./usr/share/bash-completion/completions/keel-agent' \
		'-rw-r--r-- root/root ./usr/share/zsh/vendor-completions/_keel-agent' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-agent/copyright' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-agent/README.md' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-agent/README.package.md' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-agent/SECURITY.md' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-agent/docs/edge.md' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-agent/docs/wire/edge-grpc.md' \
		'drwxr-xr-x root/root ./etc/keel/' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-agent/changelog.Debian.gz' \
		'-rw-r--r-- root/root ./usr/share/lintian/overrides/keel-agent'; do
		read -r mode owner path <<<"$want"
		awk -v m="$mode" -v o="$owner" -v p="$path" '$1 == m && $2 == o && $6 == p { found = 1 } END { exit !found }' <<<"$contents" ||
			fail "$deb: no $path with mode $mode and owner $owner"
	done
	conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)
	[ "$conffiles" = /etc/keel/agent.yaml ] || fail "$deb: conffiles is '$conffiles', want /etc/keel/agent.yaml"
	if [ "$deb" = "${debs[0]}" ]; then # the same docs in every architecture's
		rm -rf "$tmp/unpacked" && mkdir "$tmp/unpacked" && dpkg-deb -x "$deb" "$tmp/unpacked"
		check_doc_links "$tmp/unpacked/usr/share/doc/keel-agent"
	fi
	if dpkg-deb -c "$deb" | grep -q sysusers; then fail "$deb: ships a sysusers.d file (the agent runs as root)"; fi
	echo "ok: $deb: files, owners, modes, conffiles"
done

need rpm "apt-get install rpm"
for pkg in "${rpms[@]}"; do
	echo "== $pkg"
	check_rpm_files "$pkg" '-rwxr-xr-x root/root - /usr/bin/keel-agent' \
		'-rw-r--r-- root/root cn /etc/keel/agent.yaml' \
		'-rw-r--r-- root/root - /usr/lib/systemd/system/keel-agent.service' \
		'drwx------ root/root - /var/lib/keel-agent' \
		'-rw-r--r-- root/root l /usr/share/licenses/keel-agent/copyright' \
		'-rw-r--r-- root/root - /usr/share/bash-completion/completions/keel-agent' \
		'-rw-r--r-- root/root - /usr/share/zsh/site-functions/_keel-agent' \
		'-rw-r--r-- root/root d /usr/share/doc/keel-agent/README.md' \
		'-rw-r--r-- root/root d /usr/share/doc/keel-agent/docs/edge.md'
	echo "ok: $pkg: files, owners, modes, %config(noreplace)"
done

lint_packages "$tmp" "${debs[@]}" -- "${rpms[@]}"

# --- 2. install, upgrade, remove, purge ---------------------------------------------------
if [ "$(id -u)" != 0 ]; then
	echo "note: not root: the .deb is not installed (run as root for the install tests)"
	exit 0
fi
command -v dpkg >/dev/null || { echo "note: no dpkg: the .deb is not installed"; exit 0; }
arch=$(dpkg --print-architecture)
shopt -s nullglob
debs=("$dist"/keel-agent_*_"$arch".deb)
shopt -u nullglob
[ ${#debs[@]} -eq 1 ] || fail "want one keel-agent .deb for $arch in $dist, found ${#debs[@]}"
deb=${debs[0]}

if installed; then
	[ -e "$marker" ] || fail "keel-agent is installed on this machine and not by this test: not touching it"
	echo "note: purging the keel-agent a previous run left"
	dpkg -P keel-agent
fi
echo "== dpkg -i $deb"
ours=1
dpkg -i "$deb" </dev/null
touch "$marker"
version1=$(dpkg-query -W -f='${Version}' keel-agent)
echo "installed keel-agent $version1"
check_file() { # path owner:group octal-mode
	local got
	got=$(stat -c '%U:%G %a' "$1") || fail "$1 missing"
	[ "$got" = "$2 $3" ] || fail "$1 is $got, want $2 $3"
}
check_file /usr/bin/keel-agent root:root 755
check_file /etc/keel/agent.yaml root:root 644
check_file /var/lib/keel-agent root:root 700
check_file /usr/lib/systemd/system/keel-agent.service root:root 644
check_file /usr/share/man/man1/keel-agent.1.gz root:root 644
[ ! -e /etc/systemd/system/multi-user.target.wants/keel-agent.service ] || fail "keel-agent.service enabled by the install (the node must enroll first)"
echo "ok: files, owners, modes; unit installed, not enabled"

echo "== keel-agent version, check-config"
keel-agent version
keel-agent check-config --config /etc/keel/agent.yaml >"$tmp/check.out"
head -n 3 "$tmp/check.out"

echo "== upgrade, with a locally changed config"
sed -i 's/^node_id: ""/node_id: package-test-node/' /etc/keel/agent.yaml
grep -q '^node_id: package-test-node' /etc/keel/agent.yaml || fail "could not change the config"
release=$(dpkg-query -W -f='${Version}' keel-agent | sed 's/.*-//')
${MAKE:-make} --no-print-directory -s package DIST="$tmp/dist" PKG_ARCHES="$arch" PKG_RELEASE=$((release + 1)) >/dev/null
dpkg -i "$tmp"/dist/keel-agent_*_"$arch".deb </dev/null
version2=$(dpkg-query -W -f='${Version}' keel-agent)
dpkg --compare-versions "$version2" gt "$version1" || fail "upgrade: version $version2 is not above $version1"
grep -q '^node_id: package-test-node' /etc/keel/agent.yaml || fail "upgrade replaced the locally changed config"
[ -e "$marker" ] || fail "upgrade lost /var/lib/keel-agent"
keel-agent check-config --config /etc/keel/agent.yaml | grep -q '^node_id: package-test-node' || fail "upgraded agent does not read the kept config"
echo "ok: upgraded $version1 -> $version2; config and state kept"

echo "== dpkg -r"
dpkg -r keel-agent </dev/null
[ "$(dpkg-query -W -f='${db:Status-Status}' keel-agent)" = config-files ] || fail "after dpkg -r: not in config-files state"
[ ! -e /usr/bin/keel-agent ] || fail "after dpkg -r: /usr/bin/keel-agent still there"
grep -q '^node_id: package-test-node' /etc/keel/agent.yaml || fail "after dpkg -r: the config is gone"
[ -e "$marker" ] || fail "after dpkg -r: /var/lib/keel-agent is gone"
echo "ok: removed; config and state kept"

echo "== dpkg -P"
dpkg -P keel-agent </dev/null
! installed || fail "after dpkg -P: still known to dpkg"
[ ! -e /etc/keel/agent.yaml ] || fail "after dpkg -P: /etc/keel/agent.yaml still there"
[ ! -e /var/lib/keel-agent ] || fail "after dpkg -P: /var/lib/keel-agent still there"
echo "ok: purged; config and state gone"
echo "test-agent-package: PASS"
