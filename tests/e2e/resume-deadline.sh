#!/bin/sh
# The source is lost for good (rpage-server killed, never started again)
# while a process still has missing pages. Past --resume-timeout the daemon
# kills the process before it lets its userfaultfd go, so no missing page
# ever reads as zeros (by default, --on-source-lost=kill).
. "$(dirname "$0")/lib.sh"
"$BIN/rpage-bench" mkimage "$WORK/img" 64M 4
start_server mem="$WORK/img"
start_client --connect 127.0.0.1:"$PORT" --no-fill --resume-timeout 2
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 64M --seed 4 >"$WORK/guest.log" 2>&1 &
g=$!
PIDS="$PIDS $g"
wait_line "$WORK/client.log" "serving 1 range"
sleep 0.3
kill -9 "$SRV_PID"
wait_line "$WORK/client.log" "reconnecting (attempt" 10
kill -0 "$g" || fail "the process ended at once, before the deadline"
wait_line "$WORK/client.log" "killed: its source is lost" 15
set +e
wait "$g"
rc=$?
set -e
[ "$rc" = 137 ] || fail "the process was not killed by SIGKILL (exit status $rc): $(cat "$WORK/guest.log")"
grep -q "mismatch" "$WORK/guest.log" && fail "the process got to check its memory: $(cat "$WORK/guest.log")"
kill -0 "$CLI_PID" || fail "the daemon died"
wait_line "$WORK/client.log" "has gone"
json_check "$WORK/stats.json" 's[-1]["state"] == "failed"'
grep "killed: its source is lost" "$WORK/client.log"

# --on-source-lost=wait: the process stays blocked past the deadline (the
# daemon keeps reconnecting: only the source can unblock it), never reads
# zeros; asked to stop meanwhile, the daemon says it waits for it; the
# server comes back and the process completes with every byte right.
kill "$CLI_PID"
wait "$CLI_PID" 2>/dev/null || true
start_server mem="$WORK/img"
SRV_PORT=$PORT
start_client --connect 127.0.0.1:"$PORT" --no-fill --resume-timeout 1 --on-source-lost wait
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 64M --seed 4 >"$WORK/guest2.log" 2>&1 &
g=$!
PIDS="$PIDS $g"
wait_line "$WORK/client.log" "serving 1 range"
sleep 0.3
kill -9 "$SRV_PID"
wait "$SRV_PID" 2>/dev/null || true
wait_line "$WORK/client.log" "reconnecting (attempt" 10
sleep 3
kill -0 "$g" || fail "the process ended under --on-source-lost=wait: $(cat "$WORK/guest2.log")"
grep -q "killed" "$WORK/client.log" && fail "the process was killed under --on-source-lost=wait"
kill "$CLI_PID"
wait_line "$WORK/client.log" "still has missing pages: stopping once they complete" 10
kill -0 "$CLI_PID" || fail "the daemon left a process with missing pages"
mv "$WORK/server.log" "$WORK/server.1"
start_server mem="$WORK/img"
wait "$g" || fail "the process failed: $(cat "$WORK/guest2.log")"
grep -q " 0 mismatches" "$WORK/guest2.log" || fail "wrong bytes: $(cat "$WORK/guest2.log")"
set +e
wait "$CLI_PID"
crc=$?
set -e
[ "$crc" = 0 ] || fail "the daemon exited $crc once the process had completed"
grep "stopping once they complete" "$WORK/client.log"
cat "$WORK/guest2.log"

# a process that arrives while the source is down: its attach fails; it is
# killed rather than left with a userfaultfd that closes on missing pages
kill "$CLI_PID" "$SRV_PID" 2>/dev/null || true
wait "$CLI_PID" "$SRV_PID" 2>/dev/null || true
SRV_PORT=
mv "$WORK/server.log" "$WORK/server.2"
start_server mem="$WORK/img"
start_client --connect 127.0.0.1:"$PORT" --no-fill
kill -9 "$SRV_PID"
wait "$SRV_PID" 2>/dev/null || true
set +e
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 64M --seed 4 >"$WORK/guest3.log" 2>&1
rc=$?
set -e
[ "$rc" = 137 ] || fail "a process whose attach failed was not killed (status $rc): $(cat "$WORK/guest3.log")"
grep -q "cannot serve its memory" "$WORK/client.log" || fail "the failed attach was not reported"
grep "killed: its memory can no longer be served" "$WORK/client.log"
