# Shared helpers for the end-to-end tests (sourced; POSIX sh).
# Each test: exit 0 pass, 1 fail, 77 skip (with a printed reason).
set -eu
: "${B:=build}"
BIN=$(cd "$B/bin" && pwd)
TBIN=$(cd "$B/tests" && pwd)
WORK=$(mktemp -d /tmp/rpage-e2e.XXXXXX)
PIDS=""
AT_EXIT=":"   # extra clean-up commands, run after the processes are gone
RUN_AS=""     # a prefix for the daemons (e.g. setpriv ...): who runs them

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

# wait_count FILE PATTERN N [SECONDS]: until PATTERN is on N lines of FILE
wait_count() {
	i=0
	while [ "$(grep -c "$2" "$1" 2>/dev/null)" -lt "$3" ]; do
		i=$((i + 1))
		[ $i -le $((${4:-10} * 20)) ] || fail "timed out waiting for $3 lines '$2' in $1"
		sleep 0.05
	done
}

# start_server NAME=PATH...: sets PORT, SRV_PID. $SRV_ARGS: more options
# (credentials, limits); $SRV_PORT: the port (default: any free one).
start_server() {
	args=""
	for r in "$@"; do args="$args --region $r"; done
	# the log of a server before this one must not answer wait_line: the
	# background shell opens the new one only when it gets to run
	rm -f "$WORK/server.log"
	# shellcheck disable=SC2086
	$RUN_AS "$BIN/rpage-server" --listen 127.0.0.1:"${SRV_PORT:-0}" $args ${SRV_ARGS:-} >"$WORK/server.log" 2>&1 &
	SRV_PID=$!
	PIDS="$PIDS $SRV_PID"
	wait_line "$WORK/server.log" "rpage-server: ready"
	PORT=$(sed -n 's/.*ready on 127.0.0.1:\([0-9]*\) .*/\1/p' "$WORK/server.log")
	[ -n "$PORT" ] || fail "no port in the server's ready line"
}

# stop_server: ends the server started last and waits for it, so a new
# one can take over server.log
stop_server() {
	kill "$SRV_PID" 2>/dev/null || true
	wait "$SRV_PID" 2>/dev/null || true
}

# start_client [ARGS...]: sets SOCK, CLI_PID (args after the source)
start_client() {
	SOCK="$WORK/uffd.sock"
	rm -f "$WORK/client.log" # as for the server: no stale "ready"
	# shellcheck disable=SC2086
	$RUN_AS "$BIN/rpage-client" --uffd-socket "$SOCK" --stats-json "$WORK/stats.json" \
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

# gen_psk FILE [IDENTITY]: a fresh key file, as a user would make it
gen_psk() {
	"$BIN/rpage-server" --gen-psk "$1" --identity "${2:-rpage}" >/dev/null ||
		fail "rpage-server --gen-psk $1"
}

# gen_pki DIR: an X.509 CA, a server certificate for 127.0.0.1/localhost
# (CN server) and client certificates (CN client1, client2), with
# GnuTLS's certtool; skips when it is not installed.
gen_pki() {
	command -v certtool >/dev/null || skip "certtool (gnutls-bin) is not installed"
	mkdir -p "$1"
	(
		cd "$1" || exit 1
		printf 'cn = "rpage test CA"\nca\ncert_signing_key\nexpiration_days = 2\n' >ca.tmpl
		printf 'cn = "server"\ndns_name = "localhost"\nip_address = "127.0.0.1"\ntls_www_server\ntls_www_client\nexpiration_days = 2\n' >server.tmpl
		certtool -p --key-type ecdsa --outfile ca.key &&
			certtool -s --load-privkey ca.key --template ca.tmpl --outfile ca.crt &&
			certtool -p --key-type ecdsa --outfile server.key &&
			certtool -c --load-privkey server.key --load-ca-certificate ca.crt \
				--load-ca-privkey ca.key --template server.tmpl --outfile server.crt || exit 1
		for c in client1 client2; do
			printf 'cn = "%s"\ntls_www_client\nexpiration_days = 2\n' "$c" >$c.tmpl
			certtool -p --key-type ecdsa --outfile $c.key &&
				certtool -c --load-privkey $c.key --load-ca-certificate ca.crt \
					--load-ca-privkey ca.key --template $c.tmpl --outfile $c.crt || exit 1
		done
	) >"$WORK/certtool.log" 2>&1 || fail "certtool could not make the test certificates"
}

# start_proxy TARGET_PORT [tcpproxy.py options]: sets PROXY_PORT
start_proxy() {
	python3 "$(dirname "$0")/tcpproxy.py" "$WORK/proxy.port" "$@" 2>"$WORK/proxy.log" &
	PIDS="$PIDS $!"
	i=0
	while [ ! -s "$WORK/proxy.port" ]; do
		i=$((i + 1)); [ $i -le 100 ] || fail "the proxy did not start"; sleep 0.05
	done
	PROXY_PORT=$(cat "$WORK/proxy.port")
	rm -f "$WORK/proxy.port"
}
