#!/bin/sh
# Every TCP connection of a live migration is reset (ss -K) during
# post-copy. The destination's fault handler reconnects to the source's
# page server and resumes its session; the source, its control connection
# gone, keeps serving until the destination reports over the page server
# that every page has arrived. The workload's memory is verified against
# the reference: nothing lost, nothing wrong.
. "$(dirname "$0")/live-lib.inc"
need_uffd
need_netns
command -v ss >/dev/null || skip "ss (iproute2) is not installed"
run_bench --netns --link-rate 40mbit --size 16M --write-rate 10 --duration 4 --mode postcopy --cut-postcopy-after 400
[ "$RC" = 0 ] || fail "exit status $RC, expected 0"
grep -q "cutting the migration's TCP connections" "$LIVE_OUT.err" || fail "the connections were not cut"
grep -q "reconnected after" "$LIVE_OUT.err" || fail "the destination did not reconnect"
grep -q "the page server keeps serving the destination" "$LIVE_OUT.err" || fail "the source did not wait for the destination"
grep -q "every page arrived" "$LIVE_OUT.err" || fail "the source did not learn that every page arrived"
[ "$(jget verified)" = true ] || fail "the workload's memory was not verified"
[ "$(jget source_error)" = 0 ] || fail "the source reports an error"
[ "$(jget dest_error)" = 0 ] || fail "the destination reports an error"
echo "PASS: connections cut in post-copy, resumed: $(grep -o 'reconnected after [0-9.]* s' "$LIVE_OUT.err" | head -1), memory verified"
