# Shell helpers for packaging/test-packages.sh, test-agent-package.sh and test-emulated.sh
# (sourced, bash). The sourcing script defines fail MESSAGE.
# A relay under test listens on 127.0.0.1:0 for both its API and admin listeners (the kernel
# picks free ports, so nothing clashes); the address is read back from its start-up log line.

# start_relay LOG CMD...: start CMD (a `keel-relay run`, possibly behind qemu or setpriv) in
# the background with its output in LOG; sets RELAY_PID and RELAY_API (host:port) once it
# has logged that it started, and RELAY_ADMIN (host:port of its admin listener, empty when it
# has none). Fails after RELAY_START_TIMEOUT seconds (default 60).
start_relay() {
	local log=$1 deadline
	shift
	KEEL_HTTP_LISTEN=127.0.0.1:0 KEEL_ADMIN_LISTEN=127.0.0.1:0 KEEL_EDGE_LISTEN=127.0.0.1:0 "$@" >"$log" 2>&1 &
	RELAY_PID=$!
	RELAY_API=
	deadline=$((SECONDS + ${RELAY_START_TIMEOUT:-60}))
	while [ $SECONDS -lt $deadline ]; do
		RELAY_API=$(sed -n 's/.*msg="keel-relay started".* api=\([^ ]*\).*/\1/p' "$log" | head -n 1)
		RELAY_ADMIN=$(sed -n 's/.*msg="keel-relay started".* admin=\([^ ]*\).*/\1/p' "$log" | head -n 1)
		[ -n "$RELAY_API" ] && return 0
		if ! kill -0 "$RELAY_PID" 2>/dev/null; then
			echo "FAIL: the relay exited while starting:" >&2
			cat "$log" >&2
			return 1
		fi
		sleep 0.2
	done
	echo "FAIL: the relay did not start within ${RELAY_START_TIMEOUT:-60}s:" >&2
	cat "$log" >&2
	return 1
}

# expect_status_200: GET /rudder/relay-api/1/system/status on the running relay answers 200.
expect_status_200() {
	local code
	code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 "http://$RELAY_API/rudder/relay-api/1/system/status")
	if [ "$code" != 200 ]; then
		echo "FAIL: GET /rudder/relay-api/1/system/status on $RELAY_API answered $code" >&2
		return 1
	fi
	echo "ok: GET http://$RELAY_API/rudder/relay-api/1/system/status -> 200"
}

# stop_relay LOG: SIGTERM the relay; it must drain and exit 0 within 60s.
stop_relay() {
	local log=$1 rc=0 i
	kill -TERM "$RELAY_PID"
	for i in $(seq 600); do
		kill -0 "$RELAY_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$RELAY_PID" 2>/dev/null; then
		kill -KILL "$RELAY_PID"
		echo "FAIL: the relay did not exit within 60s of SIGTERM" >&2
		return 1
	fi
	wait "$RELAY_PID" || rc=$?
	RELAY_PID=
	if [ "$rc" != 0 ]; then
		echo "FAIL: the relay exited $rc after SIGTERM:" >&2
		cat "$log" >&2
		return 1
	fi
	if ! grep -q 'msg="keel-relay stopped"' "$log"; then
		echo "FAIL: no clean stop in the relay's log:" >&2
		cat "$log" >&2
		return 1
	fi
	echo "ok: SIGTERM -> drained, exit 0"
}

# kill_relay: cleanup for traps; stops a relay left running by a failed step.
kill_relay() {
	if [ -n "${RELAY_PID:-}" ] && kill -0 "$RELAY_PID" 2>/dev/null; then
		kill -KILL "$RELAY_PID" 2>/dev/null || true
		wait "$RELAY_PID" 2>/dev/null || true
	fi
	RELAY_PID=
}

# check_rpm_files PKG WANT...: every WANT ("MODE USER/GROUP FLAGS PATH", FLAGS "-" for none,
# as rpm's %{FILEFLAGS:fflags} prints them) is in PKG's file list; prints the package's
# info, scripts and file list first.
check_rpm_files() {
	local pkg=$1 files want mode owner flags path
	shift
	rpm -qpi "$pkg"
	rpm -qp --scripts "$pkg"
	files=$(rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]' "$pkg")
	echo "$files"
	for want in "$@"; do
		read -r mode owner flags path <<<"$want"
		[ "$flags" = - ] && flags=
		awk -v m="$mode" -v o="$owner" -v f="$flags" -v p="$path" \
			'$1 == m && $2 == o && (NF == 3 ? f == "" && $3 == p : $3 == f && $4 == p) { found = 1 } END { exit !found }' <<<"$files" ||
			fail "$pkg: no $path with mode $mode, owner $owner and flags '$flags'"
	done
}

# lint_packages TMPDIR DEBS... -- RPMS...: lintian on the .debs, rpmlint (when installed) on
# the .rpms, both with our overrides; errors and warnings fail.
lint_packages() {
	local tmpdir=$1 debs=() rpms=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do debs+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	rpms=("$@")
	command -v lintian >/dev/null || fail "lintian not found (apt-get install lintian)"
	echo "== lintian"
	# Tags at info level and above are shown; errors and warnings fail.
	lintian --display-info --fail-on error,warning "${debs[@]}"
	echo "ok: lintian"
	if command -v rpmlint >/dev/null; then
		echo "== rpmlint"
		# nfpm writes the rpm payload with absolute member names (goreleaser/nfpm#1122) and
		# rpmlint unpacks it with `rpm2cpio | cpio -id`: GNU cpio would write the files onto /
		# (and rpmlint would see none of them). Its cpio here strips the leading /.
		mkdir -p "$tmpdir/bin"
		printf '#!/bin/sh\nexec %s --no-absolute-filenames "$@"\n' "$(command -v cpio)" >"$tmpdir/bin/cpio"
		chmod 755 "$tmpdir/bin/cpio"
		PATH="$tmpdir/bin:$PATH" rpmlint --config packaging/rpmlint.toml "${rpms[@]}"
		echo "ok: rpmlint"
	else
		echo "note: rpmlint not found; the .rpm is not linted (apt-get install rpmlint)"
	fi
}

# check_doc_links DOCDIR: every relative link of the Markdown files under DOCDIR (an installed
# /usr/share/doc/<package>, unpacked) to README.md, SECURITY.md or a Markdown file under docs/
# resolves to a file under DOCDIR; no link leaves the repository (../ above the top). Links to
# the source tree (relay/config/default.yaml, ...) and to anchors are not checked.
check_doc_links() {
	local top=$1 md dir link target path n=0
	while IFS= read -r -d '' md; do
		dir=$(dirname "$md")
		while IFS= read -r link; do
			target=${link%%#*}
			case "$target" in '' | *://* | mailto:*) continue ;; esac
			path=$(realpath -m "$dir/$target")
			case "$path" in "$top"/*) ;; *) fail "$md: the link $link leaves the repository" ;; esac
			case "${path#"$top"/}" in README.md | SECURITY.md | docs/*.md) ;; *) continue ;; esac
			[ -f "$path" ] || fail "$md: the link $link points at nothing installed"
			n=$((n + 1))
		done < <(grep -o '\]([^)]*)' "$md" | sed 's/^](//; s/)$//')
	done < <(find "$top" -name '*.md' -print0)
	echo "ok: $n links between the installed docs resolve"
}
