#!/bin/sh
# tests/run.sh all|unit|e2e|rdma|san: runs the test programs, each with a
# timeout, prints PASS/FAIL/SKIP with its duration, and ends with
# "N passed, N failed, N skipped". Exit status non-zero when anything
# failed. A skip is never a pass: in CI (CI=true) the RDMA guest tests may
# not skip at all.
set -u
: "${B:=build}"
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mode=${1:-all}
pass=0 fail=0 skip=0 failed=""
logdir=$B/test-logs
mkdir -p "$logdir"

run() { # NAME TIMEOUT CMD...
	name=$1 t=$2
	shift 2
	start=$(date +%s.%N)
	timeout -k 10 "$t" "$@" >"$logdir/$name.log" 2>&1
	rc=$?
	secs=$(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || echo "?")
	secs=$(printf '%.1f' "$secs" 2>/dev/null || echo "$secs")
	case $rc in
	0) pass=$((pass + 1)); echo "PASS $name (${secs}s)" ;;
	77) skip=$((skip + 1)); echo "SKIP $name (${secs}s): $(grep -m1 -i 'skip' "$logdir/$name.log" | cut -c1-200)" ;;
	*) fail=$((fail + 1)); failed="$failed $name"
	   [ $rc = 124 ] && echo "FAIL $name: timed out after ${t}s" || echo "FAIL $name rc=$rc (${secs}s)"
	   tail -n 40 "$logdir/$name.log" | sed 's/^/    | /' ;;
	esac
}

if [ "$mode" = all ] || [ "$mode" = unit ]; then
	run unit-tests 300 "$B/tests/unit-tests"
	grep -E '^ +(suites|tests|asserts) ' "$logdir/unit-tests.log" || true
fi
if [ "$mode" = all ] || [ "$mode" = e2e ]; then
	for t in tests/e2e/*.sh; do
		case $t in */lib.sh) continue ;; esac
		run "e2e-$(basename "$t" .sh)" 240 env B="$B" sh "$t"
	done
fi
if [ "$mode" = all ] || [ "$mode" = rdma ]; then
	if [ -x tests/rdma/run-rdma-tests.sh ] || [ -f tests/rdma/run-rdma-tests.sh ]; then
		run rdma-softroce 1500 env B="$B" bash tests/rdma/run-rdma-tests.sh
	fi
fi
if [ "${CI:-}" = true ] && [ $skip -gt 0 ]; then
	echo "CI: $skip test(s) skipped; in CI a skip is a failure"
	fail=$((fail + skip))
fi
echo
[ -z "$failed" ] || echo "failed:$failed (logs in $logdir)"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
