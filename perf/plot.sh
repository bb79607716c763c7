#!/bin/sh
# SPDX-License-Identifier: MIT
# Turns rpage-bench data into SVG plots (gnuplot, e.g. Debian's gnuplot-nox).
#
#   perf/plot.sh [-o OUTDIR] [-f svg|png] [--cdf FILE] [--timeline FILE]
#                [--title TEXT]
#
#   --cdf FILE       from `rpage-bench fault --cdf FILE`:
#                    OUTDIR/fault-cdf.svg (latency CDF per transport/baseline)
#   -f png           PNG (pngcairo) instead of SVG
#   --timeline FILE  from `rpage-bench timeline --timeline FILE`:
#                    OUTDIR/migration-timeline.svg (resident % and faults/ms)
#   OUTDIR defaults to docs/img. The CDF is thinned (a point each 0.5 % of
#   the samples below p99, each 0.02 % up to p99.9, every sample above), so
#   the SVG stays small and the tail stays exact.
set -eu

out=docs/img
fmt=svg
cdf=
tl=
title=
while [ $# -gt 0 ]; do
	case "$1" in
	-o) out=$2; shift 2 ;;
	-f) fmt=$2; shift 2 ;;
	--cdf) cdf=$2; shift 2 ;;
	--timeline) tl=$2; shift 2 ;;
	--title) title=$2; shift 2 ;;
	-h|--help) sed -n '3,15p' "$0"; exit 0 ;;
	*) echo "plot.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
if [ -z "$cdf" ] && [ -z "$tl" ]; then
	echo "plot.sh: give --cdf FILE and/or --timeline FILE" >&2
	exit 2
fi
command -v gnuplot >/dev/null 2>&1 || {
	echo "plot.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2
	exit 77
}
case "$fmt" in
svg) term='svg size 800,480 dynamic font "sans,12"' ;;
png) term='pngcairo size 800,480 font "sans,10"' ;;
*) echo "plot.sh: -f svg or png" >&2; exit 2 ;;
esac
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ -n "$cdf" ]; then
	# thin each block: a point each 0.004 of fraction below p99, each
	# 0.0002 up to p99.9, every sample above
	awk 'BEGIN { blk = 0 }
	     /^$/ { next }
	     NF == 1 { if (blk++) printf "\n\n"; print; last = -1; next }
	     { step = $2 >= 0.99 ? 0.0002 : 0.005
	       if ($2 >= 0.999 || $2 - last >= step) { print; last = $2 } }' \
		"$cdf" > "$tmp/cdf.dat"
	nblk=$(grep -c '^[A-Za-z]' "$tmp/cdf.dat")
	gnuplot <<EOF
set terminal $term
set output "$out/fault-cdf.$fmt"
set title "${title:-first-touch fault latency (rpage-bench fault)}"
set xlabel "latency [us] (log scale)"
set ylabel "fraction of faults"
set logscale x
set grid
set key bottom right
set yrange [0:1]
plot for [i=0:$((nblk - 1))] "$tmp/cdf.dat" index i using 1:2 with lines lw 2 title columnheader(1)
EOF
	echo "wrote $out/fault-cdf.$fmt"
fi

if [ -n "$tl" ]; then
	gnuplot <<EOF
set terminal $term
set output "$out/migration-timeline.$fmt"
set title "${title:-post-copy migration timeline (rpage-bench timeline)}"
set xlabel "time since attach [ms]"
set ylabel "resident [%]"
set y2label "faults per ms"
set yrange [0:105]
set y2range [0:*]
set ytics nomirror
set y2tics
set grid
set key center right
plot "$tl" using 1:2 with lines lw 2 title "resident %" axes x1y1, \
     "$tl" using 1:3 with lines lw 1 title "faults/ms" axes x1y2
EOF
	echo "wrote $out/migration-timeline.$fmt"
fi
