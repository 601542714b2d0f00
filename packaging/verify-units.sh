#!/usr/bin/env bash
# verify-units.sh [DIST]: `systemd-analyze verify` and `systemd-analyze security` on every
# init/*.service.
#
# verify checks that ExecStart's program exists, so each unit is verified as a copy whose
# /usr/bin/<name> points at the binary built for this machine (dist/linux-<arch>/<name>, built
# here when missing). A unit whose binary does not exist yet is verified with only that one
# complaint filtered out. Documentation=man: pages are not looked up (--man=no): the
# man page is in the package, not on this machine; lintian checks it.
# security fails above an exposure of 2.0 (systemd's scale: 0 best, 10 worst), or the bound a
# unit declares for itself in a "# verify-units: exposure-max=N.N" comment.
set -euo pipefail
cd "$(dirname "$0")/.."
dist=${1:-dist}
command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze not found (apt-get install systemd)" >&2; exit 1; }
goarch=$(go env GOARCH)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

status=0
for unit in init/*.service; do
	name=$(basename "$unit" .service)
	bin=$dist/linux-$goarch/$name
	if [ ! -x "$bin" ] && compgen -G "cmd/$name/*.go" >/dev/null; then
		mkdir -p "$dist/linux-$goarch"
		CGO_ENABLED=0 go build -trimpath -o "$bin" "./cmd/$name"
	fi
	missing=
	if [ -x "$bin" ]; then
		sed "s|/usr/bin/$name |$(realpath "$bin") |g" "$unit" >"$tmp/$name.service"
	else
		cp "$unit" "$tmp/$name.service"
		missing="Command /usr/bin/$name is not executable: No such file or directory"
		echo "note: $name is not built yet (no cmd/$name): its missing binary is not reported"
	fi
	out=$(systemd-analyze verify --man=no "$tmp/$name.service" 2>&1) || true
	[ -n "$missing" ] && out=$(printf '%s\n' "$out" | grep -vF "$missing" || true)
	if [ -n "$out" ]; then
		echo "FAIL: systemd-analyze verify $unit:"
		printf '%s\n' "$out"
		status=1
	else
		echo "ok: systemd-analyze verify $unit"
	fi
	# A unit may raise its own bound with a comment "# verify-units: exposure-max=N.N" that
	# says why (keel-agent runs the Rudder agent as root, unsandboxed by design).
	max=$(sed -n 's/^# verify-units: exposure-max=\([0-9]*\.[0-9]\).*/\1/p' "$unit" | head -n 1)
	max=${max:-2.0}
	if systemd-analyze security --offline=true --threshold="${max/./}" "$unit" >"$tmp/$name.security" 2>&1; then
		echo "ok: $(tail -n 1 "$tmp/$name.security") (bound $max)"
	else
		cat "$tmp/$name.security"
		echo "FAIL: systemd-analyze security $unit: exposure above $max"
		status=1
	fi
done
exit $status
