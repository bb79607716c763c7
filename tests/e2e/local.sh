#!/bin/sh
# The local transport (lazy restore from a file on this host), faults only
# and with fill.
. "$(dirname "$0")/lib.sh"
"$BIN/rpage-bench" mkimage "$WORK/img" 32M 9
start_client --local "$WORK/img" --once --no-fill
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 32M --seed 9 --ranges 2 \
	>"$WORK/guest.log" 2>&1 || fail "guest failed (faults only)"
wait "$CLI_PID" || fail "client exited with $?"
json_check "$WORK/stats.json" 's[0]["pages_by_fill"] == 0 and s[0]["pages_by_fault"] == 8192'
rm -f "$WORK/stats.json"
start_client --local "$WORK/img" --once
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 32M --seed 9 --order seq \
	>"$WORK/guest.log" 2>&1 || fail "guest failed (with fill)"
wait "$CLI_PID" || fail "client exited with $?"
json_check "$WORK/stats.json" 's[0]["state"] == "complete"'
