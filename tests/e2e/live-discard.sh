#!/bin/sh
# Live migration and discards. Destination: after the switchover the
# workload discards a page it has read and one it never touched: both read
# zeros, before and after post-copy completes. Source, synchronous
# write-protect tracking (and as on kernels before 6.4): a page discarded
# and rewritten after round 1 sent it reaches the destination rewritten.
. "$(dirname "$0")/lib.sh"
"$TBIN/rpage-probe" --seed 15 live-dest-discard >"$WORK/probe.log" 2>&1 ||
	fail "$(cat "$WORK/probe.log")"
"$TBIN/rpage-probe" --seed 15 live-sync-wp >>"$WORK/probe.log" 2>&1 ||
	fail "$(cat "$WORK/probe.log")"
RPAGE_INJECT=uffd-wp-old-kernel "$TBIN/rpage-probe" --seed 15 live-sync-wp >>"$WORK/probe.log" 2>&1 ||
	fail "(as before 6.4) $(cat "$WORK/probe.log")"
cat "$WORK/probe.log"
