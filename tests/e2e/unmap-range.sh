#!/bin/sh
# Two ranges; the process unmaps the first right after the handshake, with
# the background fill running. The fill's placements there fail (nothing is
# mapped): that range is dropped, the second is still served, every byte
# right, and the process's service completes.
. "$(dirname "$0")/lib.sh"
"$TBIN/rpage-probe" mkimage "$WORK/img" 64M 13
start_server mem="$WORK/img"
start_client --connect 127.0.0.1:"$PORT" --once
"$TBIN/rpage-probe" --socket "$SOCK" --seed 13 --size 64M unmap-first >"$WORK/probe.log" 2>&1 ||
	fail "$(cat "$WORK/probe.log")"
wait "$CLI_PID" || fail "the daemon exited with $?"
grep -q "FAILED" "$WORK/client.log" && fail "the process was declared failed"
json_check "$WORK/stats.json" 's[-1]["state"] in ("complete", "gone") and s[-1]["error"] in (0, -3)'
cat "$WORK/probe.log"
