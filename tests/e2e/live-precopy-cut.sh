#!/bin/sh
# Every TCP connection of a live migration is reset (ss -K) in the middle
# of pre-copy. The source reconnects to the destination, which takes the
# connections back as the same session (same key, same identity), and
# sends the interrupted round again; the migration then finishes as if
# nothing had happened. The workload's memory is verified against the
# reference: nothing lost, nothing stale.
. "$(dirname "$0")/live-lib.inc"
need_uffd
need_netns
command -v ss >/dev/null || skip "ss (iproute2) is not installed"
# 32 MiB at 40 Mbit/s: the first round takes about 7 s, the cut lands in it
run_bench --netns --link-rate 40mbit --size 32M --write-rate 10 --duration 4 --cut-precopy-after 1500
[ "$RC" = 0 ] || fail "exit status $RC, expected 0"
grep -q "cutting the migration's TCP connections during pre-copy" "$LIVE_OUT.err" || fail "the connections were not cut"
grep -q "pre-copy round 1 to .* broke" "$LIVE_OUT.err" || fail "the source did not see round 1 break"
grep -q "reconnected to .* pre-copy goes on with round 1 again" "$LIVE_OUT.err" || fail "the source did not reconnect"
grep -q "is back after .* pre-copy goes on" "$LIVE_OUT.err" || fail "the destination did not take the source back"
[ "$(jget source)" -ge 1 ] 2>/dev/null || fail "the source counts no pre-copy reconnect"
[ "$(jget verified)" = true ] || fail "the workload's memory was not verified"
[ "$(jget source_error)" = 0 ] || fail "the source reports an error"
[ "$(jget dest_error)" = 0 ] || fail "the destination reports an error"
echo "PASS: connections cut in pre-copy, round sent again: $(grep -o 'reconnected to [^:]*:[0-9]* after [0-9.]* s' "$LIVE_OUT.err" | head -1), memory verified"
