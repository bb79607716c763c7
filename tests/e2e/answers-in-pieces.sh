#!/bin/sh
# Answers that arrive in pieces. The fault handler reads page answers
# without waiting, whatever has arrived, and takes up the rest later: a
# relay passes the server's stream on in pieces of 1 to 1000 bytes with a
# pause after each, so every answer (and, over TLS, every record) arrives
# split at every place in its headers and data. The guest checks every
# byte of every page it faults in; plain TCP and TLS, faults only.
# Then an ERROR frame in place of an answer, in pieces a second apart: the
# handler gathers it without waiting, reports the server's message, gets
# its connection back and serves every page right.
. "$(dirname "$0")/lib.sh"
"$BIN/rpage-bench" mkimage "$WORK/img" 2M 33
gen_psk "$WORK/k.psk" node1

run() { # NAME SERVER-PORT PROXY-ARGS [CLIENT-ARGS]
	name=$1
	port=$2
	start_proxy "$port" $3
	shift 3
	cp "$WORK/proxy.log" "$WORK/$name.proxy" 2>/dev/null || true
	rm -f "$WORK/u.sock"
	"$BIN/rpage-client" --connect 127.0.0.1:"$PROXY_PORT" --uffd-socket "$WORK/u.sock" \
		--once --no-fill --no-progress --stats-json "$WORK/$name.json" "$@" \
		>"$WORK/$name.client" 2>&1 &
	cpid=$!
	PIDS="$PIDS $cpid"
	wait_line "$WORK/$name.client" "rpage-client: ready"
	"$BIN/rpage-bench" guest --uffd-socket "$WORK/u.sock" --size 2M --seed 33 --threads 2 \
		>"$WORK/$name.guest" 2>&1 || { cat "$WORK/$name.guest" "$WORK/$name.client"; fail "$name: the guest failed"; }
	grep -q " 0 mismatches" "$WORK/$name.guest" || { cat "$WORK/$name.guest"; fail "$name: a wrong page was placed"; }
	wait "$cpid" || { cat "$WORK/$name.client"; fail "$name: the client failed"; }
	json_check "$WORK/$name.json" 's[-1]["state"] == "complete" and s[-1]["pages_resident"] == s[-1]["pages_total"] == 512'
	grep -h "mismatches" "$WORK/$name.guest" | head -n 1 | sed "s/^/$name: /"
}

start_server mem="$WORK/img"
run plain "$PORT" --chop
run error "$PORT" "--error-at 100"
grep -q "answered page request 100 with an ERROR frame" "$WORK/proxy.log" ||
	{ cat "$WORK/proxy.log"; fail "error: the relay did not send the ERROR frame"; }
grep -q "refused: tcpproxy: injected error" "$WORK/error.client" ||
	{ cat "$WORK/error.client"; fail "error: the server's message, read in pieces, was not reported"; }
grep -h "refused: tcpproxy" "$WORK/error.client" | head -n 1
stop_server
SRV_ARGS="--psk-file $WORK/k.psk" start_server mem="$WORK/img"
run tls "$PORT" --chop --psk-file "$WORK/k.psk"
echo "answers read in pieces: every byte right over plain TCP and TLS, and an ERROR frame in pieces reported"
