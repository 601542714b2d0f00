# Shell helpers for packaging/test-packages.sh and packaging/test-emulated.sh (sourced, bash).
# A relay under test listens on 127.0.0.1:0 for both its API and admin listeners (the kernel
# picks free ports, so nothing clashes); the address is read back from its start-up log line.

# start_relay LOG CMD...: start CMD (a `keel-relay run`, possibly behind qemu or setpriv) in
# the background with its output in LOG; sets RELAY_PID and RELAY_API (host:port) once it
# has logged that it started. Fails after RELAY_START_TIMEOUT seconds (default 60).
start_relay() {
	local log=$1 deadline
	shift
	KEEL_HTTP_LISTEN=127.0.0.1:0 KEEL_ADMIN_LISTEN=127.0.0.1:0 "$@" >"$log" 2>&1 &
	RELAY_PID=$!
	RELAY_API=
	deadline=$((SECONDS + ${RELAY_START_TIMEOUT:-60}))
	while [ $SECONDS -lt $deadline ]; do
		RELAY_API=$(sed -n 's/.*msg="keel-relay started".* api=\([^ ]*\).*/\1/p' "$log" | head -n 1)
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
