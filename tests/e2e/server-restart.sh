#!/bin/sh
# The server dies mid-transfer: the client must report it clearly, keep
# running, and exit with an error status when told to stop.
. "$(dirname "$0")/lib.sh"
"$BIN/rpage-bench" mkimage "$WORK/img" 64M 3
start_server mem="$WORK/img"
start_client --connect 127.0.0.1:"$PORT" --no-fill
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 64M --seed 3 >"$WORK/guest.log" 2>&1 &
g=$!
PIDS="$PIDS $g"
wait_line "$WORK/client.log" "serving 1 range"
sleep 0.2
kill -9 "$SRV_PID"
wait_line "$WORK/client.log" "FAILED" 10
grep -q "fetching page at offset .* failed" "$WORK/client.log" || fail "no clear message naming the page"
kill -0 "$CLI_PID" 2>/dev/null || fail "client crashed"
kill -9 "$g"; wait "$g" 2>/dev/null || true
wait_line "$WORK/client.log" "has gone"
kill "$CLI_PID"
if wait "$CLI_PID"; then fail "client exited 0 after a failed transfer"; fi
json_check "$WORK/stats.json" 's[-1]["state"] == "failed" and s[-1]["error"] < 0'
grep -E "FAILED|failed" "$WORK/client.log" | head -3
