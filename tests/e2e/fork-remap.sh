#!/bin/sh
# UFFD_EVENT_FORK: 100 children each read pages nobody has touched yet (the
# handler serves the child's userfaultfd) and exit; afterwards the daemon
# holds no descriptor of theirs. UFFD_EVENT_REMAP: part of a range moved
# with mremap reads right at its new address; a fault in shared memory the
# handler was not given is left unanswered rather than filled with zeros.
. "$(dirname "$0")/lib.sh"
"$TBIN/rpage-probe" mkimage "$WORK/img" 32M 14
start_server mem="$WORK/img"
start_client --connect 127.0.0.1:"$PORT"
"$TBIN/rpage-probe" --socket "$SOCK" --seed 14 --size 32M --daemon-pid "$CLI_PID" fork \
	>"$WORK/probe.log" 2>&1 || fail "$(cat "$WORK/probe.log")"
"$TBIN/rpage-probe" --socket "$SOCK" --seed 14 --size 32M remap \
	>>"$WORK/probe.log" 2>&1 || fail "$(cat "$WORK/probe.log")"
# a fault in shared memory the handler was not given (the old place of a
# memfd moved with MREMAP_DONTUNMAP) must not be answered with zeros, which
# would land in the file. Without the background fill: the fill may rightly
# fill that page through the range before the probe moves it.
kill "$CLI_PID"
wait "$CLI_PID" 2>/dev/null
# (and with --on-source-lost=wait: that fault ends the process's service,
# and by default the daemon would then kill it before the probe can look)
start_client --connect 127.0.0.1:"$PORT" --no-fill --on-source-lost wait
"$TBIN/rpage-probe" --socket "$SOCK" --seed 14 outside-shared \
	>>"$WORK/probe.log" 2>&1 || fail "$(cat "$WORK/probe.log")"
wait_line "$WORK/client.log" "not private anonymous"
kill -0 "$CLI_PID" || fail "the daemon died"
cat "$WORK/probe.log"
