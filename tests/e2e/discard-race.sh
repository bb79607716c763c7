#!/bin/sh
# A fault races a discard of the same page: one thread reads page P while
# another calls MADV_DONTNEED on P. After both return, P must read zeros
# (the kernel zaps P once the REMOVE event has been read, so a page placed
# after that would hold stale source data). Over TCP, faults only, so every
# page is placed by the fault path; 300 pages, each raced once.
. "$(dirname "$0")/lib.sh"
"$TBIN/rpage-probe" mkimage "$WORK/img" 4M 11
start_server mem="$WORK/img"
start_client --connect 127.0.0.1:"$PORT" --no-fill --once
"$TBIN/rpage-probe" --socket "$SOCK" --seed 11 discard-race >"$WORK/probe.log" 2>&1 ||
	fail "a discarded page read stale data: $(cat "$WORK/probe.log")"
cat "$WORK/probe.log"
