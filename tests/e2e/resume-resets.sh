#!/bin/sh
# Every connection between rpage-client and rpage-server is reset (ss -K,
# both ends) five times, at random moments of a 1 GiB post-copy, with the
# background fill on and two threads faulting. The client reconnects each
# time, resumes its session, sends again the page requests in flight and
# goes on filling from what is resident: the process reads every byte
# right and nothing is placed twice (the fill never overwrites a page).
# Then the same without the fill, where a page request lost with its
# connection and never sent again would leave its fault blocked for good.
. "$(dirname "$0")/lib.sh"
command -v ss >/dev/null || skip "ss (iproute2) is not installed"
ss -K dst 127.0.0.2 >/dev/null 2>&1 || skip "ss -K does not work here (no CONFIG_INET_DIAG_DESTROY?)"
"$BIN/rpage-bench" mkimage "$WORK/img" 1G 7
start_server mem="$WORK/img"
# a slow fill (16 KiB requests, one at a time) so that the transfer lasts
# long enough for every reset to land in the middle of it
start_client --connect 127.0.0.1:"$PORT" --fill-chunk 16384 --fill-depth 1
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 1G --seed 7 --threads 2 \
	>"$WORK/guest.log" 2>&1 &
g=$!
PIDS="$PIDS $g"
wait_line "$WORK/client.log" "serving 1 range"
resets() { # N: N resets while the transfer is still going on
	n=0
	while [ $n -lt "$1" ]; do
		# 0.1 to 0.6 s
		sleep "$(awk -v r="$(od -An -N2 -tu2 /dev/urandom)" 'BEGIN { printf "%.2f", 0.1 + (r % 50) / 100 }')"
		grep -q "is complete" "$WORK/client.log" &&
			fail "the memory was complete after $n resets: make the transfer longer"
		n=$((n + 1))
		ss -K "( sport = :$PORT or dport = :$PORT )" >/dev/null 2>&1
		wait_count "$WORK/client.log" "server .*reconnected after" "$n" 30
		echo "reset $n: $(grep "server .*reconnected after" "$WORK/client.log" | tail -n 1 | sed "s/.*: //")"
	done
}
# wait_guest SECONDS: the process ends within SECONDS with every byte right
wait_guest() {
	i=0
	while kill -0 "$g" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le $(($1 * 10)) ] || fail "the process is still blocked $1 s after the last reset: $(tail -n 5 "$WORK/client.log")"
		sleep 0.1
	done
	wait "$g" || fail "the process failed: $(cat "$WORK/guest.log")"
	grep -q " 0 mismatches" "$WORK/guest.log" || fail "wrong bytes: $(cat "$WORK/guest.log")"
	wait_line "$WORK/client.log" "has gone"
	cat "$WORK/guest.log"
}
resets 5
wait_guest 60
json_check "$WORK/stats.json" 's[-1]["state"] == "complete" and s[-1]["reconnects"] >= 5 and s[-1]["pages_resident"] == s[-1]["pages_total"] and s[-1]["pages_by_fault"] + s[-1]["pages_by_fill"] == s[-1]["pages_total"]'

# faults only
kill "$CLI_PID"
wait "$CLI_PID" 2>/dev/null || true
start_client --connect 127.0.0.1:"$PORT" --no-fill
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 256M --seed 7 --threads 2 \
	>"$WORK/guest.log" 2>&1 &
g=$!
PIDS="$PIDS $g"
wait_line "$WORK/client.log" "serving 1 range"
resets 3
wait_guest 30
json_check "$WORK/stats.json" 's[-1]["state"] == "complete" and s[-1]["reconnects"] >= 3 and s[-1]["pages_by_fault"] == s[-1]["pages_total"]'
