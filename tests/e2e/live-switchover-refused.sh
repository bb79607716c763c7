#!/bin/sh
# The destination fails the switchover (fault injection): it never
# resumed, so the source resumes its workload through the resume
# callback, runs it to the end, and its memory equals the reference.
. "$(dirname "$0")/live-lib.inc"
need_uffd
[ -x "$TEST_BENCH" ] || skip "$TEST_BENCH not built"
BENCH=$TEST_BENCH
RPAGE_INJECT=live-switchover-error run_bench --size 32M --write-rate 40 --duration 3 --mode hybrid
[ "$RC" = 1 ] || fail "exit status $RC, expected 1"
grep -q "the destination refused the switchover" "$LIVE_OUT" || fail "the source did not report the refusal"
grep -q "the workload resumed here" "$LIVE_OUT" || fail "the source did not resume"
grep -q "memory matches the reference" "$LIVE_OUT" || fail "source memory not verified after resuming"
echo "PASS: switchover refused by the destination: the workload resumed on the source, memory verified"
