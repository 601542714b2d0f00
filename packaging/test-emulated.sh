#!/usr/bin/env bash
# test-emulated.sh [DIST]: the arm64 and armv7 binaries of `make cross` run under qemu-user:
# `version` of keel-relay and keel-agent names the right platform, and keel-relay `run` (temporary data directory, ports picked by the
# kernel) starts, answers one status request with 200, and drains on SIGTERM with exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/testlib.sh
dist=${1:-dist}
export RELAY_START_TIMEOUT=${RELAY_START_TIMEOUT:-120} # emulation is slow

tmp=$(mktemp -d)
trap 'kill_relay; rm -rf "$tmp"' EXIT

for target in arm64:qemu-aarch64-static:linux/arm64 arm:qemu-arm-static:linux/arm; do
	IFS=: read -r arch qemu platform <<<"$target"
	bin=$dist/linux-$arch/keel-relay
	[ -x "$bin" ] || { echo "FAIL: $bin missing (make cross)" >&2; exit 1; }
	command -v "$qemu" >/dev/null || { echo "FAIL: $qemu not found (apt-get install qemu-user-static)" >&2; exit 1; }
	echo "== $platform under $qemu"
	out=$("$qemu" "$bin" version)
	echo "$out"
	case "$out" in *" $platform)"*) ;; *) echo "FAIL: version does not say $platform" >&2; exit 1 ;; esac
	agent=$dist/linux-$arch/keel-agent
	[ -x "$agent" ] || { echo "FAIL: $agent missing (make cross)" >&2; exit 1; }
	out=$("$qemu" "$agent" version)
	echo "$out"
	case "$out" in "keel-agent "*" $platform)"*) ;; *) echo "FAIL: keel-agent version does not say $platform" >&2; exit 1 ;; esac

	printf 'data_dir: %s\n' "$tmp/$arch-data" >"$tmp/$arch.yaml"
	start_relay "$tmp/$arch.log" "$qemu" "$bin" run --config "$tmp/$arch.yaml"
	expect_status_200
	stop_relay "$tmp/$arch.log"
done
echo "test-emulated: PASS"
