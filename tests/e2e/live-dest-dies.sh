#!/bin/sh
# The destination dies during pre-copy: the source says so, keeps its
# workload running, and its memory ends equal to the reference.
. "$(dirname "$0")/live-lib.inc"
need_uffd
need_netns
run_bench --netns --link-rate 40mbit --size 16M --write-rate 10 --duration 4 --kill-dest-after 1000
[ "$RC" = 1 ] || fail "exit status $RC, expected 1"
grep -q "lost during pre-copy" "$LIVE_OUT" || fail "the source did not report the loss"
grep -q "keeps running here, its memory untouched" "$LIVE_OUT" || fail "no 'keeps running' statement"
grep -q "memory matches the reference" "$LIVE_OUT" || fail "source memory not verified"
echo "PASS: destination killed in pre-copy: source reports it, workload finished on the source, memory verified"
