#!/bin/sh
# The connection is lost during post-copy (every TCP connection of the
# migration reset with ss -K): both sides report a clear error and the
# destination says how many pages it holds.
. "$(dirname "$0")/live-lib.inc"
need_uffd
need_netns
command -v ss >/dev/null || skip "ss (iproute2) is not installed"
run_bench --netns --link-rate 40mbit --size 16M --write-rate 10 --duration 4 --mode postcopy --cut-postcopy-after 400
[ "$RC" = 1 ] || fail "exit status $RC, expected 1"
grep -q "post-copy ended with an error" "$LIVE_OUT" "$LIVE_OUT.err" || fail "the source did not report the loss"
grep -q "post-copy failed" "$LIVE_OUT" || fail "the destination did not report the loss"
grep -Eq "[0-9]+ of [0-9]+ pages resident here" "$LIVE_OUT" || fail "the destination state is not reported"
echo "PASS: connection lost in post-copy: $(grep -o '[0-9]* of [0-9]* pages resident here' "$LIVE_OUT" | head -1)"
