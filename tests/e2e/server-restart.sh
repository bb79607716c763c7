#!/bin/sh
# rpage-server is killed with -9 in the middle of a post-copy, three times,
# and started again on the same file and port after a few seconds each
# time. The client keeps the process blocked meanwhile (its faults wait),
# reconnects by itself, proves the region is still the same image, and
# carries on: the process reads every byte right and completes.
. "$(dirname "$0")/lib.sh"
"$BIN/rpage-bench" mkimage "$WORK/img" 256M 3
start_server mem="$WORK/img"
SRV_PORT=$PORT
# no background fill: every page arrives by a fault, so the cuts land in
# the middle of the faults
start_client --connect 127.0.0.1:"$PORT" --no-fill
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 256M --seed 3 >"$WORK/guest.log" 2>&1 &
g=$!
PIDS="$PIDS $g"
wait_line "$WORK/client.log" "serving 1 range"
for cut in 1 2 3; do
	sleep 0.3
	kill -0 "$g" 2>/dev/null || fail "the process ended before cut $cut (make the image larger?)"
	kill -9 "$SRV_PID"
	wait "$SRV_PID" 2>/dev/null || true
	wait_count "$WORK/client.log" "reconnecting (attempt 1," "$cut" 10
	sleep 2
	kill -0 "$CLI_PID" || fail "the client died while the server was down"
	kill -0 "$g" || fail "the process ended while the server was down"
	mv "$WORK/server.log" "$WORK/server.$cut"
	start_server mem="$WORK/img"
	wait_count "$WORK/client.log" "reconnected after" "$cut" 15
done
wait "$g" || fail "the process failed: $(cat "$WORK/guest.log")"
grep -q " 0 mismatches" "$WORK/guest.log" || fail "wrong bytes: $(cat "$WORK/guest.log")"
wait_line "$WORK/client.log" "has gone"
json_check "$WORK/stats.json" 's[-1]["state"] == "complete" and s[-1]["reconnects"] >= 3 and s[-1]["faults_waited"] >= 1 and s[-1]["recovering_s"] >= 3'
grep "reconnected after" "$WORK/client.log"
cat "$WORK/guest.log"
