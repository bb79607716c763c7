#!/bin/sh
# A writer faster than the link (veth between two namespaces, shaped to
# 40 Mbit/s): pure pre-copy reports non-convergence and leaves the
# workload running (verified on the source); hybrid switches to post-copy
# and finishes verified with the downtime within the target.
. "$(dirname "$0")/live-lib.inc"
need_uffd
need_netns
run_bench --netns --link-rate 40mbit --size 16M --write-rate 20 --duration 6 --mode precopy
[ "$RC" = 3 ] || fail "precopy: exit status $RC, expected 3 (refused)"
[ "$(jget reason)" = not-converging ] || fail "precopy: reason $(jget reason)"
grep -q "refuses to finish" "$LIVE_OUT" || fail "precopy: no refusal message"
grep -q "memory matches the reference" "$LIVE_OUT" || fail "precopy: source memory not verified"
echo "ok: precopy refused: $(jget why | cut -c1-120)"
run_bench --netns --link-rate 40mbit --size 16M --write-rate 20 --duration 8 --mode hybrid --max-downtime 300
[ "$RC" = 0 ] || fail "hybrid: exit status $RC"
[ "$(jget verified)" = true ] || fail "hybrid: not verified"
[ "$(jget reason)" = not-converging ] || fail "hybrid: reason $(jget reason)"
dt=$(jget downtime_ms)
awk "BEGIN{exit !($dt <= 300)}" || fail "hybrid: downtime $dt ms > 300 ms"
echo "PASS: precopy refuses, hybrid finishes verified, downtime $dt ms <= 300 ms, $(jget postcopy_pages) pages by post-copy"
