#!/usr/bin/env bash
# test-packages.sh [DIST]: checks the packages `make package` left in DIST (default dist).
#
#  1. Inspects every .deb and .rpm (metadata, file list with owners and modes, conffiles,
#     scripts, the docs and the links between them, cluster.proto) and runs lintian and rpmlint on them with our overrides; errors fail.
#  2. As root (else skipped), on a Debian-like machine: installs the .deb of this machine's
#     architecture for real, checks the keel account, files, owners and modes, checks the
#     config as keel, runs the rpm's %post against the installed unit under a disable and an
#     enable preset, runs the relay as the unit would (as keel, on ports the kernel picks) and
#     gets a 200 from /system/status, stops it with SIGTERM (exit 0), upgrades to a rebuilt
#     package (release + 1) with a locally changed config that must be kept, removes it (config
#     and data kept) and purges it (both gone). The keel account is left, as Debian policy says.
#
# It cleans up after itself and can be rerun. It never touches a keel-relay installed by
# someone else: a package it did not install (no marker in /var/lib/keel-relay) stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/testlib.sh
dist=${1:-dist}
marker=/var/lib/keel-relay/.keel-package-test
preset=/etc/systemd/system-preset/00-keel-package-test.preset
preset_dir_made=0 # set when this script made the preset directory (removed again)

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
need() {
	command -v "$1" >/dev/null || fail "$1 not found ($2)"
}

installed() { # known to dpkg: installed, or removed with its config left
	local s
	s=$(dpkg-query -W -f='${db:Status-Status}' keel-relay 2>/dev/null) || return 1
	[ -n "$s" ] && [ "$s" != not-installed ]
}
tmp=$(mktemp -d)
ours=0 # set once this script has installed the package
cleanup() {
	kill_relay
	rm -f "$preset"
	[ "$preset_dir_made" = 0 ] || rmdir "${preset%/*}" 2>/dev/null || true
	if [ "$ours" = 1 ] && installed; then
		dpkg -P keel-relay >/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

shopt -s nullglob
debs=("$dist"/keel-relay_*.deb)
rpms=("$dist"/keel-relay-*.rpm)
shopt -u nullglob
[ ${#debs[@]} -gt 0 ] || fail "no .deb in $dist (make package)"
[ ${#rpms[@]} -gt 0 ] || fail "no .rpm in $dist (make package)"

# --- 1. inspect and lint -------------------------------------------------------------------
need dpkg-deb "apt-get install dpkg"
for deb in "${debs[@]}"; do
	echo "== $deb"
	dpkg-deb -I "$deb"
	contents=$(dpkg-deb -c "$deb" | sed 's| 0/0 | root/root |')
	echo "$contents"
	# mode owner/group path, as the package will install them
	for want in '-rwxr-xr-x root/root ./usr/bin/keel-relay' \
		'-rw-r----- root/keel ./etc/keel/relay.yaml' \
		'-rw-r--r-- root/root ./usr/lib/systemd/system/keel-relay.service' \
		'-rw-r--r-- root/root ./usr/lib/sysusers.d/keel-relay.conf' \
		'drwxr-x--- keel/keel ./var/lib/keel-relay/' \
		'-rw-r--r-- root/root ./usr/share/man/man1/keel-relay.1.gz' \
		'-rw-r--r-- root/root ./usr/share/bash-completion/completions/keel-relay' \
		'-rw-r--r-- root/root ./usr/share/zsh/vendor-completions/_keel-relay' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-relay/copyright' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-relay/README.md' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-relay/README.package.md' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-relay/SECURITY.md' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-relay/docs/api.md' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-relay/docs/metrics.md' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-relay/docs/edge.md' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-relay/docs/wire/relay-api.md' \
		'-rw-r--r-- root/root ./usr/share/keel/cluster.proto' \
		'drwxr-xr-x root/root ./etc/keel/' \
		'-rw-r--r-- root/root ./usr/share/doc/keel-relay/changelog.Debian.gz' \
		'-rw-r--r-- root/root ./usr/share/keel/monitoring/keel-relay.dashboard.json' \
		'-rw-r--r-- root/root ./usr/share/keel/monitoring/keel-relay.rules.yml' \
		'-rw-r--r-- root/root ./usr/share/lintian/overrides/keel-relay'; do
		read -r mode owner path <<<"$want"
		awk -v m="$mode" -v o="$owner" -v p="$path" '$1 == m && $2 == o && $6 == p { found = 1 } END { exit !found }' <<<"$contents" ||
			fail "$deb: no $path with mode $mode and owner $owner"
	done
	conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)
	[ "$conffiles" = /etc/keel/relay.yaml ] || fail "$deb: conffiles is '$conffiles', want /etc/keel/relay.yaml"
	if [ "$deb" = "${debs[0]}" ]; then # the same docs and .proto in every architecture's
		rm -rf "$tmp/unpacked" && mkdir "$tmp/unpacked" && dpkg-deb -x "$deb" "$tmp/unpacked"
		cmp -s "$tmp/unpacked/usr/share/keel/cluster.proto" internal/wire/edgepb/cluster.proto ||
			fail "$deb: /usr/share/keel/cluster.proto is not internal/wire/edgepb/cluster.proto"
		check_doc_links "$tmp/unpacked/usr/share/doc/keel-relay"
	fi
	echo "ok: $deb: files, owners, modes, conffiles"
done

need rpm "apt-get install rpm"
for pkg in "${rpms[@]}"; do
	echo "== $pkg"
	check_rpm_files "$pkg" '-rwxr-xr-x root/root - /usr/bin/keel-relay' \
		'-rw-r----- root/keel cn /etc/keel/relay.yaml' \
		'-rw-r--r-- root/root - /usr/lib/systemd/system/keel-relay.service' \
		'drwxr-x--- keel/keel - /var/lib/keel-relay' \
		'-rw-r--r-- root/root l /usr/share/licenses/keel-relay/copyright' \
		'-rw-r--r-- root/root - /usr/share/bash-completion/completions/keel-relay' \
		'-rw-r--r-- root/root - /usr/share/zsh/site-functions/_keel-relay' \
		'-rw-r--r-- root/root d /usr/share/doc/keel-relay/README.md' \
		'-rw-r--r-- root/root - /usr/share/keel/monitoring/keel-relay.rules.yml' \
		'-rw-r--r-- root/root d /usr/share/doc/keel-relay/SECURITY.md' \
		'-rw-r--r-- root/root d /usr/share/doc/keel-relay/docs/api.md' \
		'-rw-r--r-- root/root d /usr/share/doc/keel-relay/docs/metrics.md' \
		'-rw-r--r-- root/root d /usr/share/doc/keel-relay/docs/edge.md' \
		'-rw-r--r-- root/root - /usr/share/keel/cluster.proto'
	echo "ok: $pkg: files, owners, modes, %config(noreplace)"
done

lint_packages "$tmp" "${debs[@]}" -- "${rpms[@]}"

# --- 2. install, run, upgrade, remove, purge ----------------------------------------------
if [ "$(id -u)" != 0 ]; then
	echo "note: not root: the .deb is not installed (run as root for the install tests)"
	exit 0
fi
if ! command -v dpkg >/dev/null || ! command -v setpriv >/dev/null; then
	echo "note: no dpkg or setpriv: the .deb is not installed"
	exit 0
fi
arch=$(dpkg --print-architecture)
shopt -s nullglob
debs=("$dist"/keel-relay_*_"$arch".deb)
shopt -u nullglob
[ ${#debs[@]} -eq 1 ] || fail "want one keel-relay .deb for $arch in $dist, found ${#debs[@]}"
deb=${debs[0]}

if installed; then
	[ -e "$marker" ] || fail "keel-relay is installed on this machine and not by this test: not touching it"
	echo "note: purging the keel-relay a previous run left"
	dpkg -P keel-relay
fi
echo "== dpkg -i $deb"
ours=1
dpkg -i "$deb" </dev/null
touch "$marker"
version1=$(dpkg-query -W -f='${Version}' keel-relay)
echo "installed keel-relay $version1"

entry=$(getent passwd keel) || fail "no keel account"
IFS=: read -r _ _ _ gid _ home shell <<<"$entry"
[ "$home" = /var/lib/keel-relay ] || fail "keel's home is $home"
case "$shell" in */nologin) ;; *) fail "keel's shell is $shell, want nologin" ;; esac
[ "$(getent group keel | cut -d: -f3)" = "$gid" ] || fail "keel's primary group is not keel"
[ "$gid" -lt 1000 ] || fail "keel's gid $gid is not a system gid"
check_file() { # path owner:group octal-mode
	local got
	got=$(stat -c '%U:%G %a' "$1") || fail "$1 missing"
	[ "$got" = "$2 $3" ] || fail "$1 is $got, want $2 $3"
}
check_file /usr/bin/keel-relay root:root 755
check_file /etc/keel/relay.yaml root:keel 640
check_file /var/lib/keel-relay keel:keel 750
check_file /usr/lib/systemd/system/keel-relay.service root:root 644
check_file /usr/lib/sysusers.d/keel-relay.conf root:root 644
check_file /usr/share/man/man1/keel-relay.1.gz root:root 644
check_file /usr/share/doc/keel-relay/copyright root:root 644
check_file /usr/share/keel/monitoring/keel-relay.rules.yml root:root 644
check_file /usr/share/keel/monitoring/keel-relay.dashboard.json root:root 644
[ -L /etc/systemd/system/multi-user.target.wants/keel-relay.service ] || fail "keel-relay.service not enabled"
echo "ok: keel account, files, owners, modes; unit enabled"

# The rpm's %post, run here against the installed unit: on a first install it enables the
# unit only if the presets say so (systemctl preset works without a running systemd).
echo "== the rpm's %post follows the presets"
postin=$(rpm -qp --qf '%{POSTIN}' "${rpms[0]}")
if grep -Eq 'systemctl( [-a-z]+)* enable' <<<"$postin"; then fail "the rpm's %post enables the unit regardless of presets"; fi
wants=/etc/systemd/system/multi-user.target.wants/keel-relay.service
if [ ! -d "${preset%/*}" ]; then
	mkdir -p "${preset%/*}"
	preset_dir_made=1
fi
for verdict in disable enable; do
	echo "$verdict keel-relay.service" >"$preset"
	sh -c "$postin" rpm-post 1
	if [ "$verdict" = enable ]; then
		[ -L "$wants" ] || fail "the rpm's %post on a first install did not enable the unit under an enable preset"
	else
		[ ! -e "$wants" ] || fail "the rpm's %post on a first install left the unit enabled under a disable preset"
	fi
done
rm -f "$preset"
echo "ok: the rpm's %post: disable preset -> disabled, enable preset -> enabled"

echo "== check-config as keel"
runuser -u keel -- keel-relay check-config --config /etc/keel/relay.yaml >"$tmp/check.out"
head -n 3 "$tmp/check.out"

# As the unit runs it: user and group keel, umask 0027, the packaged config.
run_as_keel() {
	start_relay "$tmp/$1.log" setpriv --reuid=keel --regid=keel --init-groups -- \
		sh -c 'umask 0027; exec /usr/bin/keel-relay run --config /etc/keel/relay.yaml'
}
echo "== run as keel"
run_as_keel run1
expect_status_200
# The packaged config sets admin.token_file: the relay created the token, and only those who
# can read it (root, keel) drive the admin API.
check_file /var/lib/keel-relay/admin.token keel:keel 600
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 "http://$RELAY_ADMIN/status")
[ "$code" = 401 ] || fail "GET /status on the admin listener without the token answered $code, want 401"
keel-relay edge ls --config /etc/keel/relay.yaml --admin "$RELAY_ADMIN" >"$tmp/ls.out" || fail "keel-relay edge ls as root failed: $(cat "$tmp/ls.out")"
grep -q '0 daemon(s)' "$tmp/ls.out" || fail "keel-relay edge ls as root: $(cat "$tmp/ls.out")"
if runuser -u nobody -- keel-relay edge ls --admin "$RELAY_ADMIN" >"$tmp/ls-nobody.out" 2>&1; then
	fail "keel-relay edge ls as nobody succeeded: $(cat "$tmp/ls-nobody.out")"
fi
grep -q '401' "$tmp/ls-nobody.out" || fail "keel-relay edge ls as nobody: $(cat "$tmp/ls-nobody.out"), want the relay's 401"
echo "ok: admin token created keel:keel 0600; the admin API answers root's CLI, refuses nobody (401)"
stop_relay "$tmp/run1.log"
[ -z "$(find /var/lib/keel-relay -mindepth 1 ! -user keel ! -path "$marker" -print -quit)" ] || fail "files in /var/lib/keel-relay not owned by keel"
ls -la /var/lib/keel-relay

echo "== upgrade, with a locally changed config"
sed -i 's/^  level: info /  level: debug/' /etc/keel/relay.yaml
grep -q '^  level: debug' /etc/keel/relay.yaml || fail "could not change the config"
release=$(dpkg-query -W -f='${Version}' keel-relay | sed 's/.*-//')
${MAKE:-make} --no-print-directory -s package DIST="$tmp/dist" PKG_ARCHES="$arch" PKG_RELEASE=$((release + 1)) >/dev/null
dpkg -i "$tmp"/dist/keel-relay_*_"$arch".deb </dev/null
version2=$(dpkg-query -W -f='${Version}' keel-relay)
dpkg --compare-versions "$version2" gt "$version1" || fail "upgrade: version $version2 is not above $version1"
grep -q '^  level: debug' /etc/keel/relay.yaml || fail "upgrade replaced the locally changed config"
[ -e "$marker" ] || fail "upgrade lost the data directory"
check_file /etc/keel/relay.yaml root:keel 640
check_file /var/lib/keel-relay keel:keel 750
run_as_keel run2
expect_status_200
stop_relay "$tmp/run2.log"
grep -q 'level=DEBUG' "$tmp/run2.log" || fail "upgraded relay did not run with the kept config (no debug log)"
echo "ok: upgraded $version1 -> $version2; config and data kept"

echo "== dpkg -r"
dpkg -r keel-relay </dev/null
[ "$(dpkg-query -W -f='${db:Status-Status}' keel-relay)" = config-files ] || fail "after dpkg -r: not in config-files state"
[ ! -e /usr/bin/keel-relay ] || fail "after dpkg -r: /usr/bin/keel-relay still there"
grep -q '^  level: debug' /etc/keel/relay.yaml || fail "after dpkg -r: the config is gone"
[ -e "$marker" ] && [ -n "$(ls /var/lib/keel-relay)" ] || fail "after dpkg -r: the data is gone"
echo "ok: removed; config and data kept"

echo "== dpkg -P"
dpkg -P keel-relay </dev/null
! installed || fail "after dpkg -P: still known to dpkg"
[ ! -e /etc/keel/relay.yaml ] || fail "after dpkg -P: /etc/keel/relay.yaml still there"
[ ! -e /var/lib/keel-relay ] || fail "after dpkg -P: /var/lib/keel-relay still there"
[ ! -e /etc/systemd/system/multi-user.target.wants/keel-relay.service ] || fail "after dpkg -P: still enabled"
getent passwd keel >/dev/null || fail "after dpkg -P: the keel account is gone (it should stay)"
echo "ok: purged; config and data gone, keel account kept"
echo "test-packages: PASS"
