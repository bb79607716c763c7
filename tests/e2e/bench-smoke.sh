#!/bin/sh
# SPDX-License-Identifier: MIT
# bench-smoke: rpage-bench fault, fill, timeline and resume run briefly and print what
# they promise: perftest's header, one line per transport and baseline, a
# PASS/MISS verdict per target, valid JSON with perftest's keys, CDF and
# timeline files. Figures are not judged here (see docs/PERFORMANCE.md).
# Exit 0 pass, 1 fail, 77 skip (with the reason). Env: B = build directory.
B=${B:-build}
bench=$B/bin/rpage-bench

skip() { echo "SKIP: bench-smoke: $*"; exit 77; }
fail() {
	echo "FAIL: bench-smoke: $*"
	for f in "$tmp"/*.out "$tmp"/*.err; do
		[ -s "$f" ] && { echo "--- $f"; cat "$f"; }
	done
	exit 1
}

[ -x "$bench" ] || skip "$bench is not built"
command -v python3 >/dev/null 2>&1 || skip "python3 is needed to check the JSON"
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# ---- fault ----
"$bench" fault -n 200 -w 20 -r 2 --image-size 16M --batch 128 \
	--json "$tmp/fault.json" --cdf "$tmp/fault.cdf" \
	>"$tmp/fault.out" 2>"$tmp/fault.err"
rc=$?
if [ $rc -ne 0 ] && grep -q "Operation not permitted\|Function not implemented" "$tmp/fault.err" "$tmp/fault.out"; then
	skip "userfaultfd is not available to this user ($(grep -m1 -o 'failed: .*' "$tmp/fault.out"))"
fi
[ $rc -eq 0 ] || fail "rpage-bench fault exited $rc"
hdr='#bytes #iterations t_min[usec] t_max[usec] t_typical[usec] t_avg[usec] t_stdev[usec] 99% percentile[usec] 99.9% percentile[usec]'
grep -qF "$hdr" "$tmp/fault.out" || fail "fault: no perftest header"
for p in local tcp anon-touch raw-tcp; do
	n=$(awk -v p="$p" '$1 == 4096 && $2 == 200 && $10 == p' "$tmp/fault.out" | wc -l)
	[ "$n" -eq 1 ] || fail "fault: $n lines for '$p' (want 1 with 200 iterations)"
done
grep -q "^# target: tcp fault p50 / local p50 .* \(PASS\|MISS\)$" "$tmp/fault.out" ||
	fail "fault: no p50 target verdict"
grep -q "^# target: tcp fault p99 / local p99 .* \(PASS\|MISS\)$" "$tmp/fault.out" ||
	fail "fault: no p99 target verdict"
python3 -m json.tool "$tmp/fault.json" >/dev/null || fail "fault: invalid JSON"
python3 - "$tmp/fault.json" <<'EOF' || fail "fault: JSON lacks perftest's keys"
import json, sys
d = json.load(open(sys.argv[1]))
keys = ["t_min", "t_max", "t_typical", "t_avg", "t_stdev", "percentile_99", "percentile_99.9"]
names = [r["name"] for r in d["results"]]
assert {"local", "tcp", "anon-touch", "raw-tcp"} <= set(names), names
for r in d["results"]:
    if r["available"]:
        assert all(k in r for k in keys), r
        assert r["iterations"] == 200 and r["t_min"] <= r["t_typical"] <= r["percentile_99"] <= r["t_max"], r
assert len(d["targets"]) == 2 and d["mismatches"] == 0
EOF
[ "$(grep -c '^[a-z]' "$tmp/fault.cdf")" -eq 4 ] || fail "fault: CDF file has not 4 blocks"

# ---- fill ----
"$bench" fill -s 16M -r 1 --json "$tmp/fill.json" >"$tmp/fill.out" 2>"$tmp/fill.err" ||
	fail "rpage-bench fill exited $?"
for p in local tcp raw-tcp uffd-copy; do
	n=$(awk -v p="$p" '$1 == p && $3 > 0' "$tmp/fill.out" | wc -l)
	[ "$n" -eq 1 ] || fail "fill: $n lines for '$p'"
done
grep -q "^# target: tcp fill / raw tcp stream .* \(PASS\|MISS\)$" "$tmp/fill.out" ||
	fail "fill: no target verdict"
python3 -m json.tool "$tmp/fill.json" >/dev/null || fail "fill: invalid JSON"

# ---- timeline: a guest process, every byte checked, sampled every ms ----
"$bench" timeline -s 16M --timeline "$tmp/tl.dat" >"$tmp/migrate.out" 2>"$tmp/migrate.err" ||
	fail "rpage-bench timeline exited $?"
grep -q "^migration: complete" "$tmp/migrate.out" || fail "timeline: not complete"
grep -q " 0 mismatches" "$tmp/migrate.out" || fail "timeline: the guest saw wrong bytes"
[ "$(grep -vc '^#' "$tmp/tl.dat")" -ge 2 ] || fail "timeline: empty file"
tail -n 1 "$tmp/tl.dat" | awk '$2 != 100.000 { exit 1 }' || fail "timeline: does not end at 100 %"

# ---- resume: the connections cut under a faulting workload ----
"$bench" resume -s 64M -n 3 --gap 50 --json "$tmp/resume.json" \
	>"$tmp/resume.out" 2>"$tmp/resume.err" || fail "rpage-bench resume exited $?"
for p in tcp-connect tcp-resume tcp-blocked tcp-fault; do
	n=$(awk -v p="$p" '$10 == p && $2 > 0' "$tmp/resume.out" | wc -l)
	[ "$n" -eq 1 ] || fail "resume: $n lines for '$p'"
done
grep -q "^# tcp: 3 cuts, .* 3 reconnects" "$tmp/resume.out" || fail "resume: not 3 cuts and 3 reconnects"
python3 - "$tmp/resume.json" <<'EOF' || fail "resume: JSON lacks what it promises"
import json, sys
d = json.load(open(sys.argv[1]))
r = d["results"][0]
assert r["transport"] == "tcp" and r["cuts"] == 3 and r["reconnects"] >= 3, r
names = [l["name"] for l in r["lines"]]
assert names == ["tcp-connect", "tcp-resume", "tcp-blocked", "tcp-fault"], names
assert all(l["available"] and "percentile_99" in l for l in r["lines"]), r
assert d["mismatches"] == 0
EOF

echo "PASS: bench-smoke (fault, fill, timeline, resume: layout, JSON, CDF, timeline)"
exit 0
