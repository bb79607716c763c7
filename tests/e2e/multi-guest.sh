#!/bin/sh
# Several processes on one client at once, from two regions, one of which
# exits abruptly mid-transfer: the others must complete, verified, and the
# client must notice the exit and carry on.
. "$(dirname "$0")/lib.sh"
"$BIN/rpage-bench" mkimage "$WORK/a" 48M 1
"$BIN/rpage-bench" mkimage "$WORK/b" 48M 2
start_server a="$WORK/a" b="$WORK/b"
start_client --connect 127.0.0.1:"$PORT" --region a --fill-depth 2
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 48M --seed 1 --ranges 2 >"$WORK/g1.log" 2>&1 &
g1=$!
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 24M --seed 1 --ranges 3 >"$WORK/g2.log" 2>&1 &
g2=$!
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 48M --seed 1 --exit-after 0.2 >"$WORK/g3.log" 2>&1 &
g3=$!
wait $g1 || fail "guest 1 failed"
wait $g2 || fail "guest 2 failed"
wait $g3 || fail "guest 3 (exits on purpose) failed"
grep -q "exiting on purpose" "$WORK/g3.log" || fail "guest 3 did not exit early"
wait_line "$WORK/client.log" "process $g3 has gone"
wait_line "$WORK/client.log" "process $g1 has gone"
wait_line "$WORK/client.log" "process $g2 has gone"
kill -0 "$CLI_PID" || fail "client died"
# a second client on the other region, at the same time as the first
SOCK2="$WORK/b.sock"
"$BIN/rpage-client" --connect 127.0.0.1:"$PORT" --region b --uffd-socket "$SOCK2" --once --no-progress >"$WORK/client2.log" 2>&1 &
c2=$!
PIDS="$PIDS $c2"
wait_line "$WORK/client2.log" "rpage-client: ready"
"$BIN/rpage-bench" guest --uffd-socket "$SOCK2" --size 48M --seed 2 >"$WORK/g4.log" 2>&1 || fail "guest on region b failed"
wait $c2 || fail "second client failed"
json_check "$WORK/stats.json" 'len(s) >= 3 and sum(1 for x in s if x["state"] == "complete") >= 2'
