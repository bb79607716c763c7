# Shared helpers for the end-to-end tests (sourced; POSIX sh).
# Each test: exit 0 pass, 1 fail, 77 skip (with a printed reason).
set -eu
: "${B:=build}"
BIN=$(cd "$B/bin" && pwd)
TBIN=$(cd "$B/tests" && pwd)
WORK=$(mktemp -d /tmp/rpage-e2e.XXXXXX)
PIDS=""
AT_EXIT=":"   # extra clean-up commands, run after the processes are gone

cleanup() {
	rc=$?
	trap - EXIT INT TERM
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	eval "$AT_EXIT" || true
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
	exit $rc
}
trap cleanup EXIT INT TERM

fail() { echo "FAIL: $*" >&2; for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }; done; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

# wait_line FILE PATTERN [SECONDS]
wait_line() {
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le $((${3:-10} * 20)) ] || fail "timed out waiting for '$2' in $1"
		sleep 0.05
	done
}

# start_server NAME=PATH...: sets PORT, SRV_PID
start_server() {
	args=""
	for r in "$@"; do args="$args --region $r"; done
	# shellcheck disable=SC2086
	"$BIN/rpage-server" --listen 127.0.0.1:0 $args >"$WORK/server.log" 2>&1 &
	SRV_PID=$!
	PIDS="$PIDS $SRV_PID"
	wait_line "$WORK/server.log" "rpage-server: ready"
	PORT=$(sed -n 's/.*ready on 127.0.0.1:\([0-9]*\) .*/\1/p' "$WORK/server.log")
	[ -n "$PORT" ] || fail "no port in the server's ready line"
}

# start_client [ARGS...]: sets SOCK, CLI_PID (args after the source)
start_client() {
	SOCK="$WORK/uffd.sock"
	"$BIN/rpage-client" --uffd-socket "$SOCK" --stats-json "$WORK/stats.json" \
		--no-progress "$@" >"$WORK/client.log" 2>&1 &
	CLI_PID=$!
	PIDS="$PIDS $CLI_PID"
	wait_line "$WORK/client.log" "rpage-client: ready"
}

# json_check FILE PYTHON-EXPR: every JSON line of FILE is bound to `s`
# (a list); the expression must be true.
json_check() {
	python3 - "$1" "$2" <<'PY'
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ok = eval("(" + sys.argv[2] + ")")
if not ok:
    print("json check failed:", sys.argv[2], file=sys.stderr)
    for x in s: print(json.dumps(x), file=sys.stderr)
    sys.exit(1)
PY
}
