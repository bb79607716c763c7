#!/bin/sh
# The background fill fails for good (fault injection) while chunks it
# fetched are still queued for placement. The process is still served by
# faults, every byte right; the slots already fetched are placed; and the
# fault thread, with nothing to do, uses no CPU (it once polled with a zero
# timeout for ever). The daemon keeps the process (--on-source-lost wait)
# rather than killing it, so that there is a process to watch.
. "$(dirname "$0")/lib.sh"
CLIENT=$B/tests/bin/rpage-client
[ -x "$CLIENT" ] || skip "$CLIENT (test build) not built"
"$TBIN/rpage-probe" mkimage "$WORK/img" 64M 16
start_server mem="$WORK/img"
SOCK="$WORK/uffd.sock"
RPAGE_INJECT=fill-give-up "$CLIENT" --connect 127.0.0.1:"$PORT" --uffd-socket "$SOCK" \
	--stats-json "$WORK/stats.json" --no-progress --fill-depth 8 --on-source-lost wait >"$WORK/client.log" 2>&1 &
CLI_PID=$!
PIDS="$PIDS $CLI_PID"
wait_line "$WORK/client.log" "rpage-client: ready"
# a process that reads half of its memory, then stays
"$TBIN/rpage-probe" --socket "$SOCK" --seed 16 --size 64M --hold 4 unmap-first \
	>"$WORK/probe.log" 2>&1 &
P=$!
PIDS="$PIDS $P"
wait_line "$WORK/client.log" "failed for good (injected" 20
wait_line "$WORK/probe.log" "unmap-first:" 30
grep -q " 0 bad pages" "$WORK/probe.log" || fail "$(cat "$WORK/probe.log")"
# the daemon's CPU time over 2 s while the process is still there, with
# nothing to do
ticks() { awk '{print $14 + $15}' /proc/"$CLI_PID"/stat; }
t0=$(ticks)
sleep 2
t1=$(ticks)
hz=$(getconf CLK_TCK)
echo "daemon CPU while idle after the failure: $((t1 - t0)) ticks in 2 s (${hz}/s)"
[ $((t1 - t0)) -le $((hz / 5)) ] || fail "the daemon spins after the fill failed: $((t1 - t0)) ticks in 2 s"
kill -0 "$P" || fail "the process was gone before the measurement ended"
wait "$P" || fail "the process failed: $(cat "$WORK/probe.log")"
grep -q "FAILED" "$WORK/client.log" || fail "the daemon did not report the failure"
cat "$WORK/probe.log"
