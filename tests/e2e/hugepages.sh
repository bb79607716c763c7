#!/bin/sh
# 2 MiB pages: the region is a hugetlbfs file on the server and the guest's
# memory is anonymous hugetlb, as with Firecracker's hugepage backend.
. "$(dirname "$0")/lib.sh"
need=80
old=$(cat /proc/sys/vm/nr_hugepages)
restore() { echo "$old" > /proc/sys/vm/nr_hugepages 2>/dev/null || true; }
if [ "$old" -lt $need ]; then
	echo $need > /proc/sys/vm/nr_hugepages 2>/dev/null || skip "cannot reserve huge pages (not root?)"
fi
got=$(cat /proc/sys/vm/nr_hugepages)
[ "$got" -ge $need ] || { restore; skip "the host refused to reserve $need huge pages (got $got)"; }
mkdir -p "$WORK/huge"
mount -t hugetlbfs -o pagesize=2M none "$WORK/huge" 2>/dev/null || { restore; skip "cannot mount hugetlbfs"; }
AT_EXIT='umount "$WORK/huge"; restore'
"$BIN/rpage-bench" mkimage "$WORK/huge/img" 64M 11 || fail "mkimage on hugetlbfs"
start_server huge="$WORK/huge/img"
start_client --connect 127.0.0.1:"$PORT" --region huge --once
grep -q "page size 2097152" "$WORK/client.log" || fail "region not seen with 2 MiB pages"
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 64M --page-size 2M \
	--ranges 4 --seed 11 --balloon 4M >"$WORK/guest.log" 2>&1 || fail "guest failed"
wait "$CLI_PID" || fail "client exited with $?"
json_check "$WORK/stats.json" 's[0]["state"] == "complete" and s[0]["page_size"] == 2097152 and s[0]["pages_total"] == 32 and s[-1]["pages_zeroed"] == 2'
cat "$WORK/guest.log"
