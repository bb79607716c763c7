#!/bin/sh
# The source keeps failing on the same pages (the image file is cut to a
# quarter under the client: every read past it fails, however often the
# client reconnects). Failures with no answer in between share one
# deadline and back off: past --resume-timeout the process is killed, and
# the daemon neither spins nor reconnects for ever.
. "$(dirname "$0")/lib.sh"
"$BIN/rpage-bench" mkimage "$WORK/img" 64M 5
start_client --local "$WORK/img" --no-fill --resume-timeout 3
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 64M --seed 5 >"$WORK/guest.log" 2>&1 &
g=$!
PIDS="$PIDS $g"
wait_line "$WORK/client.log" "serving 1 range"
truncate -s 16M "$WORK/img"
wait_line "$WORK/client.log" "killed: its source is lost" 30
set +e
wait "$g"
rc=$?
set -e
[ "$rc" = 137 ] || fail "the process was not killed (status $rc): $(cat "$WORK/guest.log")"
grep -q "mismatch" "$WORK/guest.log" && fail "the process got to check its memory"
n=$(grep -c "urgent connection .* failed" "$WORK/client.log")
echo "the urgent channel failed $n times before the deadline"
[ "$n" -le 20 ] || fail "$n failures in 3 s: the client does not back off"
kill -0 "$CLI_PID" || fail "the daemon died"
grep "did not come back\|killed" "$WORK/client.log" | head -n 3
