#!/bin/sh
# A userfaultfd that lacks UFFD_FEATURE_EVENT_REMOVE (discards would be
# silent, and the source's data would come back) or has UFFD_FEATURE_SIGBUS
# (faults never reach the handler) is refused at the handshake with a
# message naming the feature; the daemon goes on serving others.
. "$(dirname "$0")/lib.sh"
"$TBIN/rpage-probe" mkimage "$WORK/img" 4M 12
start_client --local "$WORK/img"
"$TBIN/rpage-probe" --socket "$SOCK" --seed 12 no-remove >"$WORK/probe.log" 2>&1 ||
	fail "$(cat "$WORK/probe.log")"
wait_line "$WORK/client.log" "lacks UFFD_FEATURE_EVENT_REMOVE"
"$TBIN/rpage-probe" --socket "$SOCK" --seed 12 sigbus >>"$WORK/probe.log" 2>&1 ||
	fail "$(cat "$WORK/probe.log")"
wait_line "$WORK/client.log" "has UFFD_FEATURE_SIGBUS"
# still serving: a well-formed process is served, every byte right
"$TBIN/rpage-probe" --socket "$SOCK" --seed 12 --size 4M unmap-first >>"$WORK/probe.log" 2>&1 ||
	fail "not served after the refusals: $(cat "$WORK/probe.log")"
kill -0 "$CLI_PID" || fail "the daemon died"
cat "$WORK/probe.log"
