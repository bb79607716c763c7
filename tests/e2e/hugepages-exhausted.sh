#!/bin/sh
# A process maps hugetlb memory with MAP_NORESERVE and no huge page is left:
# the kernel answers UFFDIO_COPY with EEXIST while the process keeps
# faulting. The handler must notice, fail that process with a clear
# message, and not spin forever.
. "$(dirname "$0")/lib.sh"
old=$(cat /proc/sys/vm/nr_hugepages)
free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
[ "$free" = 0 ] || { echo 0 > /proc/sys/vm/nr_hugepages 2>/dev/null || skip "cannot release huge pages (not root?)"; }
AT_EXIT='echo "$old" > /proc/sys/vm/nr_hugepages'
# A MAP_NORESERVE mapping may only take a free page nobody has reserved:
# the pages the kernel counts as free but reserved (HugePages_Rsvd, for
# someone else's mapping) are not available to it.
avail=$(awk '/HugePages_Free/ {f=$2} /HugePages_Rsvd/ {r=$2} END {print f-r}' /proc/meminfo)
[ "$avail" = 0 ] || skip "$avail huge pages are still free and unreserved (in use by someone else?)"
"$BIN/rpage-bench" mkimage "$WORK/img" 8M 6
start_client --local "$WORK/img"
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 8M --page-size 2M --no-reserve \
	--seed 6 >"$WORK/guest.log" 2>&1 &
g=$!
PIDS="$PIDS $g"
wait_line "$WORK/client.log" "FAILED" 30
grep -q "keeps faulting although the kernel reports it present" "$WORK/client.log" || fail "no clear message"
kill -0 "$CLI_PID" || fail "client died"
# its memory cannot be served: the daemon kills it (fail closed) rather
# than let it go on with pages that never arrived
wait_line "$WORK/client.log" "killed" 10
set +e
wait "$g"
rc=$?
set -e
[ "$rc" = 137 ] || fail "the process was not killed (status $rc)"
wait_line "$WORK/client.log" "has gone"
grep "keeps faulting" "$WORK/client.log"
