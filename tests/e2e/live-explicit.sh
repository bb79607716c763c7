#!/bin/sh
# Explicit switchover during a long first round (shaped link): the round
# is cut short, the rest comes by post-copy, memory verified.
. "$(dirname "$0")/live-lib.inc"
need_uffd
need_netns
run_bench --netns --link-rate 80mbit --size 32M --write-rate 5 --duration 5 --switch-after 700 --mode hybrid
[ "$RC" = 0 ] || fail "exit status $RC"
[ "$(jget verified)" = true ] || fail "not verified"
[ "$(jget reason)" = explicit ] || fail "reason $(jget reason), expected explicit"
pc=$(jget postcopy_pages)
[ "$pc" -gt 0 ] || fail "nothing left to post-copy after an early switch"
echo "PASS: explicit switchover after 700 ms: $pc pages by post-copy, verified"
