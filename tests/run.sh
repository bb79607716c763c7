#!/bin/sh
# tests/run.sh all|unit|e2e|rdma   every test of a layer (all: every layer)
# tests/run.sh -t "NAME..."        the tests named (make check T="NAME...")
# tests/run.sh -l                  every name -t accepts
#
# Runs the test programs, each with a timeout, prints PASS/FAIL/SKIP with
# its duration, and ends with "N passed, N failed, N skipped". Exit status
# non-zero when anything failed. A skip is never a pass: in CI (CI=true)
# the RDMA guest tests may not skip at all.
#
# A NAME is, looked up in this order: an end-to-end script
# (tests/e2e/NAME.sh, e.g. tcp-basic), a unit suite or one unit test
# (proto, proto/hello: unit-tests -l lists them), or a soft-RoCE guest
# variant or test (single, single/completion-error: sh
# tests/rdma/rdma-e2e.sh --list; all of them in one boot of the guest).
# Logs go to $B/test-logs/; tests/README.md says how to keep a failed
# end-to-end test's files (KEEP=1).
set -u
: "${B:=build}"
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mode=${1:-all}
pass=0 fail=0 skip=0 failed=""
logdir=$B/test-logs
mkdir -p "$logdir"
unit_bin=$B/tests/unit-tests

run() { # NAME TIMEOUT CMD...
	name=$1 t=$2
	shift 2
	log=$logdir/$(echo "$name" | tr '/' '_').log
	start=$(date +%s.%N)
	timeout -k 10 "$t" "$@" >"$log" 2>&1
	rc=$?
	secs=$(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || echo "?")
	secs=$(printf '%.1f' "$secs" 2>/dev/null || echo "$secs")
	case $rc in
	0) pass=$((pass + 1)); echo "PASS $name (${secs}s)" ;;
	77) skip=$((skip + 1)); echo "SKIP $name (${secs}s): $(grep -m1 -i 'skip' "$log" | cut -c1-200)" ;;
	*) fail=$((fail + 1)); failed="$failed $name"
	   [ $rc = 124 ] && echo "FAIL $name: timed out after ${t}s" || echo "FAIL $name rc=$rc (${secs}s)"
	   tail -n 40 "$log" | sed 's/^/    | /' ;;
	esac
}

# the unit tests need CUnit: without it the binary is not built
unit_missing() { # NAME
	fail=$((fail + 1)); failed="$failed $1"
	echo "FAIL $1: $unit_bin is not built (the unit tests need CUnit: apt-get install libcunit1-dev, then make)"
}

run_unit() { # [SUITE[/TEST]]
	if [ ! -x "$unit_bin" ]; then
		unit_missing "unit-tests${1:+:$1}"
		return
	fi
	if [ $# = 0 ]; then
		run unit-tests 300 "$unit_bin"
		grep -E '^ +(suites|tests|asserts) ' "$logdir/unit-tests.log" || true
	else
		run "unit-tests:$1" 300 "$unit_bin" -s "$1"
		grep -E '^ +(tests|asserts) ' "$logdir/unit-tests:$(echo "$1" | tr '/' '_').log" || true
	fi
}

run_e2e() { # NAME
	run "e2e-$1" 240 env B="$B" sh "tests/e2e/$1.sh"
}

run_rdma() { # [VARIANT or VARIANT/TEST...]: in one boot of the guest
	run "rdma-softroce${1:+:$(echo "$*" | tr ' ' ',')}" 1500 env B="$B" \
		bash tests/rdma/run-rdma-tests.sh "$@"
}

e2e_names() {
	for t in tests/e2e/*.sh; do
		case $t in */lib.sh) continue ;; esac
		basename "$t" .sh
	done
}
unit_names() { # suites, then SUITE/TEST
	[ -x "$unit_bin" ] || return 0
	"$unit_bin" -l | sed 's|/.*||' | uniq
	"$unit_bin" -l
}
rdma_names() { # variants, then VARIANT/TEST
	sh tests/rdma/rdma-e2e.sh --list | sed 's|/.*||' | uniq
	sh tests/rdma/rdma-e2e.sh --list
}

run_named() { # NAME
	n=${1#e2e-}
	if [ -f "tests/e2e/$n.sh" ] && [ "$n" != lib ]; then
		run_e2e "$n"
	elif unit_names | grep -qxF "$1"; then
		run_unit "$1"
	elif rdma_names | grep -qxF "$1"; then
		rdma_asked="$rdma_asked $1" # all in one boot, at the end
	elif [ ! -x "$unit_bin" ] && echo "$1" | grep -q '^[a-z-]*\(/[a-z0-9_]*\)\?$'; then
		unit_missing "$1"
	else
		fail=$((fail + 1)); failed="$failed $1"
		echo "FAIL $1: no test has this name (tests/run.sh -l lists them)"
	fi
}

case $mode in
-l)
	[ -x "$unit_bin" ] || echo "# $unit_bin is not built: no unit names (make first)" >&2
	{ e2e_names; unit_names; rdma_names; } | awk '!seen[$0]++'
	exit 0
	;;
-t)
	[ $# -ge 2 ] || { echo "usage: tests/run.sh -t \"NAME...\"" >&2; exit 2; }
	rdma_asked=""
	# shellcheck disable=SC2086 # a list of names
	for n in $2; do run_named "$n"; done
	# shellcheck disable=SC2086
	[ -z "$rdma_asked" ] || run_rdma $rdma_asked
	;;
all | unit | e2e | rdma)
	if [ "$mode" = all ] || [ "$mode" = unit ]; then
		run_unit
	fi
	if [ "$mode" = all ] || [ "$mode" = e2e ]; then
		for n in $(e2e_names); do run_e2e "$n"; done
	fi
	if [ "$mode" = all ] || [ "$mode" = rdma ]; then
		run_rdma
	fi
	;;
*)
	echo "usage: tests/run.sh all|unit|e2e|rdma | -t \"NAME...\" | -l" >&2
	exit 2
	;;
esac
if [ "${CI:-}" = true ] && [ $skip -gt 0 ]; then
	echo "CI: $skip test(s) skipped; in CI a skip is a failure"
	fail=$((fail + skip))
fi
echo
[ -z "$failed" ] || echo "failed:$failed (logs in $logdir)"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
