#!/bin/sh
# 4 KiB pages over TCP: three ranges at different offsets, random then
# sequential reads with every byte checked, a balloon remove that must read
# back as zeros; the statistics must add up.
. "$(dirname "$0")/lib.sh"
"$BIN/rpage-bench" mkimage "$WORK/img" 96M 5
start_server mem="$WORK/img"
start_client --connect 127.0.0.1:"$PORT" --once
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 96M --ranges 3 \
	--seed 5 --threads 2 --balloon 4M >"$WORK/guest.log" 2>&1 || fail "guest failed"
grep -q " 0 mismatches" "$WORK/guest.log" || fail "guest saw mismatches"
wait "$CLI_PID" || fail "client exited with $?"
json_check "$WORK/stats.json" '
s[0]["state"] == "complete" and s[0]["pages_resident"] == s[0]["pages_total"] == 24576
and s[0]["pages_by_fault"] + s[0]["pages_by_fill"] == 24576 and s[0]["faults"] > 0
and s[-1]["removes"] == 1 and s[-1]["pages_zeroed"] == 1024
and 0 < s[0]["latency_us"]["p50"] <= s[0]["latency_us"]["p99"] <= s[0]["latency_us"]["max"]'
grep -q "reports its memory complete" "$WORK/server.log" || fail "server was not told of completion"
cat "$WORK/guest.log"
