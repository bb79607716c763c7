#!/bin/sh
# The torture test, briefly, in three of its configurations (make torture
# runs every one for a minute, DURATION=1h for longer): TCP with private
# memory, hugetlbfs shared memory with holes punched in parts of pages and
# no fill, and a live migration tracked by synchronous write-protect.
. "$(dirname "$0")/lib.sh"
BIN=$BIN TBIN=$TBIN sh "$(dirname "$0")/../torture/run.sh" -d 8s tcp-anon tcp-hugefs-nofill live-sync \
	>"$WORK/torture.log" 2>&1 || fail "$(cat "$WORK/torture.log")"
cat "$WORK/torture.log"
