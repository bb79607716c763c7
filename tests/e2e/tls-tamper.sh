#!/bin/sh
# An on-path attacker flips one bit of a page in flight (a relay between
# client and server flips byte 3,000,000 of the stream the server sends).
# Over TLS the record fails its integrity check: that connection ends with
# a clear error, and no wrong page is placed (the guest checks every byte;
# the fill reconnects and the migration completes). The same flip on a
# plain connection, in the same test, places a wrong page that the guest
# sees: proof that the flip lands in page data and that the check can
# fail.
. "$(dirname "$0")/lib.sh"
"$BIN/rpage-bench" mkimage "$WORK/img" 16M 21
gen_psk "$WORK/k.psk" node1
FLIP=3000000

run() { # NAME SERVER-PORT [CLIENT-ARGS]: one migration through a flipping relay
	name=$1
	port=$2
	shift 2
	start_proxy "$port" --flip $FLIP
	mv "$WORK/proxy.log" "$WORK/$name.proxy" 2>/dev/null || true
	rm -f "$WORK/u.sock"
	"$BIN/rpage-client" --connect 127.0.0.1:"$PROXY_PORT" --uffd-socket "$WORK/u.sock" \
		--once --no-progress --stats-json "$WORK/$name.json" "$@" >"$WORK/$name.client" 2>&1 &
	cpid=$!
	PIDS="$PIDS $cpid"
	wait_line "$WORK/$name.client" "rpage-client: ready"
	set +e
	"$BIN/rpage-bench" guest --uffd-socket "$WORK/u.sock" --size 16M --seed 21 >"$WORK/$name.guest" 2>&1
	GRC=$?
	wait "$cpid"
	CRC=$?
	set -e
}

# control: plain TCP, the flipped bit is placed
start_server mem="$WORK/img"
PLAIN_PORT=$PORT
run plain "$PLAIN_PORT"
grep -q "flipped bit" "$WORK/plain.proxy" "$WORK/proxy.log" 2>/dev/null || fail "plain: the relay did not flip"
grep -q " [1-9][0-9]* mismatches\|MISMATCH" "$WORK/plain.guest" ||
	{ cat "$WORK/plain.guest"; fail "plain: the flipped bit went unnoticed (it did not land in page data?)"; }
echo "plain TCP: the flip placed a wrong page, as expected without integrity"
stop_server

# TLS: the flip ends that connection, no wrong page
SRV_ARGS="--psk-file $WORK/k.psk" start_server mem="$WORK/img"
run tls "$PORT" --psk-file "$WORK/k.psk"
grep -q "flipped bit" "$WORK/tls.proxy" "$WORK/proxy.log" 2>/dev/null || fail "tls: the relay did not flip"
grep -q "failed its integrity check" "$WORK/tls.client" ||
	{ cat "$WORK/tls.client"; fail "tls: no integrity error reported"; }
[ "$GRC" = 0 ] || { cat "$WORK/tls.guest"; fail "tls: the guest failed (rc $GRC)"; }
grep -q " 0 mismatches" "$WORK/tls.guest" || { cat "$WORK/tls.guest"; fail "tls: a wrong page was placed"; }
[ "$CRC" = 0 ] || fail "tls: the client exited $CRC"
json_check "$WORK/tls.json" 's[0]["state"] == "complete" and s[0]["pages_resident"] == s[0]["pages_total"]'
grep "failed its integrity check" "$WORK/tls.client" | head -n 1
echo "TLS: the tampered record ended its connection; every byte placed is right"
