#!/bin/sh
# The main job (`make demo`), in two parts, both verified byte for byte.
#
# Both parts authenticate with a pre-shared key made here, and every
# connection is TLS 1.3 (the live migration crosses network namespaces:
# without a key it would be refused).
#
# 1. Live migration of a running workload: 1 GiB written at random by two
#    threads as fast as they can (up to 400 MB/s; about 220 MB/s here),
#    about as fast as the 2 Gbit/s link between two network namespaces
#    carries it, so pre-copy rounds stop shrinking and can never converge;
#    hybrid mode switches over to post-copy and finishes.
# 2. Post-copy through the Firecracker handshake:
#    a deterministic memory image (1 GiB, less when memory is short) is served
# by rpage-server on loopback; rpage-client handles the faults of a process
# that does what Firecracker does with its UFFD backend (maps anonymous
# memory, registers a userfaultfd, hands it over) and then reads its memory
# in random and sequential order, checking every byte. Exits non-zero on any
# mismatch or failure.
set -eu
: "${B:=build}"
BIN=$(cd "$B/bin" && pwd)
avail_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
size_mb=1024
# image (page cache) + the process's copy + slack must fit comfortably
while [ $((size_mb * 1024 * 3)) -gt "$avail_kb" ] && [ $size_mb -gt 64 ]; do
	size_mb=$((size_mb / 2))
done
WORK=$(mktemp -d /tmp/rpage-demo.XXXXXX)
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
say() { printf '\n== %s\n' "$*"; }
progress=--no-progress
[ -t 2 ] && progress=--progress

say "making a pre-shared key: both ends authenticate, every connection is TLS 1.3"
"$BIN/rpage-server" --gen-psk "$WORK/keys.psk" --identity demo
KEY="--psk-file $WORK/keys.psk"

say "PART 1: live migration of a running ${size_mb} MiB workload (hybrid pre-copy + post-copy)"
net="--netns --link-rate 2gbit"
if ! ip netns add rpage-demo-probe 2>/dev/null; then
	net=""
	echo "(no network namespaces here: migrating over loopback, where pre-copy may well converge)"
else
	ip netns del rpage-demo-probe
fi
# the source's log lines (one per pre-copy round, the switchover) are the
# live progress; the phase report follows at the end
set +e
# shellcheck disable=SC2086
"$BIN/rpage-bench" migrate $net $KEY --size "${size_mb}M" --workload rand --threads 2 \
	--write-rate 400 --duration 12 --max-downtime 100 --mode hybrid 2>&1 | tee "$WORK/live.out"
lrc=$(grep -c "^verify *PASS" "$WORK/live.out")
set -e
[ "$lrc" = 1 ] || { echo "DEMO FAILED: live migration not verified" >&2; exit 1; }

say "PART 2: post-copy of a ${size_mb} MiB image to a Firecracker-style process"
say "making a deterministic ${size_mb} MiB memory image"
"$BIN/rpage-bench" mkimage "$WORK/memory.img" "${size_mb}M" 2026

say "starting the source: rpage-server on 127.0.0.1"
"$BIN/rpage-server" --listen 127.0.0.1:0 --region vm-mem="$WORK/memory.img" $KEY >"$WORK/server.log" 2>&1 &
PIDS="$PIDS $!"
i=0
until grep -q ready "$WORK/server.log" 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 200 ] || { cat "$WORK/server.log"; exit 1; }; sleep 0.05
done
cat "$WORK/server.log"
port=$(sed -n 's/.*ready on 127.0.0.1:\([0-9]*\) .*/\1/p' "$WORK/server.log")

say "starting the destination: rpage-client (the fault handler)"
"$BIN/rpage-client" --connect "127.0.0.1:$port" --uffd-socket "$WORK/uffd.sock" $KEY \
	--once $progress --stats-json "$WORK/stats.json" &
client=$!
PIDS="$PIDS $client"
i=0
until [ -S "$WORK/uffd.sock" ]; do
	i=$((i + 1)); [ $i -lt 200 ] || exit 1; sleep 0.05
done

say "running the guest: maps ${size_mb} MiB, hands its userfaultfd over, reads and checks every byte"
set +e
"$BIN/rpage-bench" guest --uffd-socket "$WORK/uffd.sock" --size "${size_mb}M" \
	--ranges 2 --seed 2026 --threads 2 --balloon 16M
grc=$?
wait "$client"
crc=$?
set -e
say "statistics (JSON)"
cat "$WORK/stats.json"
if [ $grc -ne 0 ] || [ $crc -ne 0 ]; then
	echo "DEMO FAILED: guest exit $grc, client exit $crc" >&2
	exit 1
fi
python3 -c '
import json,sys
s=[json.loads(l) for l in open(sys.argv[1])]
c=s[0]
assert c["state"]=="complete" and c["pages_resident"]==c["pages_total"], c
print("\nDEMO OK: %d MiB migrated by post-copy over TCP with TLS 1.3 and verified byte for byte: "
      "%d pages by fault (p50 %.1f us, p99 %.1f us), %d by background fill at %.0f MB/s, "
      "fully resident after %.3f s" % (c["pages_total"]*c["page_size"]>>20, c["pages_by_fault"],
      c["latency_us"]["p50"], c["latency_us"]["p99"], c["pages_by_fill"], c["fill_MBps"], c["resident_s"]))
' "$WORK/stats.json"
