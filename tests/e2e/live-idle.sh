#!/bin/sh
# Idle workload on loopback: pre-copy converges in one round, the
# switchover sends nothing, no post-copy fault, memory verified.
. "$(dirname "$0")/live-lib.inc"
need_uffd
run_bench --size 32M --write-rate 0 --mode hybrid --streams 4
[ "$RC" = 0 ] || fail "exit status $RC"
[ "$(jget verified)" = true ] || fail "not verified"
[ "$(jget reason)" = converged ] || fail "reason $(jget reason), expected converged"
[ "$(jget faults)" = 0 ] || fail "$(jget faults) post-copy faults, expected 0"
[ "$(jget postcopy_pages)" = 0 ] || fail "pages left to post-copy"
echo "PASS: idle workload: converged, 0 post-copy faults, verified (downtime $(jget downtime_ms) ms)"
