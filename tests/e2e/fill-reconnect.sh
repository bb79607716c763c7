#!/bin/sh
# The bulk (fill) connection is cut mid-transfer: the fill gives its batch
# back, reconnects, and the memory still completes by fill, every byte
# verified; faults are served throughout on their own connection.
. "$(dirname "$0")/lib.sh"
command -v ss >/dev/null || skip "no ss (iproute2) to cut a connection"
"$BIN/rpage-bench" mkimage "$WORK/img" 512M 8
start_server mem="$WORK/img"
# small, one-at-a-time fill requests so the fill takes a few seconds
start_client --connect 127.0.0.1:"$PORT" --once --fill-chunk 4096 --fill-depth 1
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 512M --seed 8 --touch 0.001 \
	--pause 10000 >"$WORK/guest.log" 2>&1 &
g=$!
PIDS="$PIDS $g"
wait_line "$WORK/client.log" "serving 1 range"
sleep 0.3
# the client's connections to the server, by descriptor: control, urgent,
# bulk; the bulk one was opened last
bulk=$(ss -tnpH state established "( dport = :$PORT )" | grep "pid=$CLI_PID," |
	sed -n 's/.*127.0.0.1:\([0-9]*\) *127.0.0.1:[0-9]*.*fd=\([0-9]*\).*/\2 \1/p' | sort -n | tail -1 | cut -d' ' -f2)
[ -n "$bulk" ] || fail "cannot find the bulk connection"
ss -K state established "( sport = :$bulk )" >/dev/null 2>&1 || ss -K "( sport = :$bulk )" >/dev/null
wait_line "$WORK/client.log" "background fill reconnected" 10
wait "$g" || fail "guest failed"
grep -q " 0 mismatches" "$WORK/guest.log" || fail "guest saw mismatches"
wait "$CLI_PID" || fail "client exited with $?"
json_check "$WORK/stats.json" 's[0]["state"] == "complete" and s[0]["pages_by_fill"] > 65536'
grep -E "fill .*failed|reconnect" "$WORK/client.log"
