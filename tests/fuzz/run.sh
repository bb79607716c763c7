#!/bin/sh
# tests/fuzz/run.sh TARGET...: runs each libFuzzer target (built by `make
# fuzz-build` into $FB/bin) for $FUZZ_SECONDS seconds on a scratch copy of
# its seed corpus, and prints one line per target: executions, inputs in
# the corpus, and whether anything was found. A finding (crash, leak,
# broken invariant, timeout) keeps the input in $FB/findings/TARGET/ and
# makes the script exit 1 after the other targets ran.
set -u
: "${FB:=build/fuzz}"
: "${FUZZ_SECONDS:=60}"
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
found=""
for t in "$@"; do
	bin=$FB/bin/$t
	seeds=tests/fuzz/corpus/$t
	work=$FB/corpus/$t
	out=$FB/findings/$t
	log=$FB/logs/$t.log
	mkdir -p "$work" "$out" "$FB/logs"
	[ -x "$bin" ] || { echo "fuzz: $bin missing (make fuzz-build)" >&2; exit 1; }
	[ -d "$seeds" ] || { echo "fuzz: no seed corpus $seeds" >&2; exit 1; }
	# scratch corpus first: new inputs go there, never into the repo
	"$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$out/" \
		"$work" "$seeds" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	corpus=$(ls "$work" | wc -l)
	if [ $rc = 0 ]; then
		echo "fuzz: $t: ${runs:-?} runs in ${FUZZ_SECONDS} s, corpus $corpus inputs (+ $(ls "$seeds" | wc -l) seeds), no finding"
	else
		echo "fuzz: $t: FINDING after ${runs:-?} runs (rc=$rc): $(ls "$out" | head -n 3 | tr '\n' ' ')"
		grep -m 5 -E 'ERROR|invariant|SUMMARY' "$log" | sed 's/^/    | /'
		found="$found $t"
	fi
done
[ -z "$found" ] || { echo "fuzz: findings in:$found (logs in $FB/logs)"; exit 1; }
