#!/bin/sh
# Multi-threaded writers on loopback: unthrottled rand, hot by post-copy
# only, seq with synchronous write-protect tracking, and a memfd-backed
# source: every migration verified against the reference.
. "$(dirname "$0")/live-lib.inc"
need_uffd
run_bench --size 64M --write-rate max --duration 2 --threads 4 --workload rand --max-downtime 50
[ "$RC" = 0 ] || fail "rand x4 unthrottled: exit status $RC"
[ "$(jget verified)" = true ] || fail "rand x4: not verified"
echo "ok: 4 threads rand unthrottled: $(jget reason), downtime $(jget downtime_ms) ms, $(jget postcopy_pages) pages by post-copy"
run_bench --size 32M --write-rate 40 --duration 3 --threads 3 --workload hot --mode postcopy
[ "$RC" = 0 ] || fail "hot x3 postcopy: exit status $RC"
[ "$(jget verified)" = true ] || fail "hot x3 postcopy: not verified"
echo "ok: 3 threads hot, post-copy only: $(jget faults) faults"
run_bench --size 32M --write-rate 40 --duration 3 --threads 2 --workload seq --sync-wp
[ "$RC" = 0 ] || fail "seq x2 sync-wp: exit status $RC"
[ "$(jget verified)" = true ] || fail "seq x2 sync-wp: not verified"
[ "$(jget tracking)" = sync ] || fail "tracking $(jget tracking), expected sync"
run_bench --size 32M --write-rate 40 --duration 3 --threads 2 --workload rand --memfd --mode postcopy
[ "$RC" = 0 ] || fail "memfd x2 postcopy: exit status $RC"
[ "$(jget verified)" = true ] || fail "memfd x2 postcopy: not verified"
echo "ok: memfd-backed source, 2 threads, post-copy only: $(jget faults) faults"
echo "PASS: multi-threaded writers verified (rand/hot/seq, async and sync tracking, anonymous and memfd)"
