#!/bin/sh
# A capture on loopback of a whole migration of a random image (a random
# seed) over TLS
# holds none of the image's bytes in clear: 512 pieces of 16 bytes taken
# at random places of the image are looked for in every byte captured.
# The same capture of a plain run, in the same test, finds them: proof
# that the search finds clear bytes when there are any.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "capturing on lo needs root"
command -v tcpdump >/dev/null || skip "tcpdump is not installed"
SEED=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
"$BIN/rpage-bench" mkimage "$WORK/img" 8M "$SEED" # random bytes, checkable by the guest
gen_psk "$WORK/k.psk" node1

capture_run() { # NAME [SERVER/CLIENT credentials]
	name=$1
	shift
	SRV_ARGS="$*" start_server mem="$WORK/img"
	tcpdump -i lo -s 0 -B 65536 -U -w "$WORK/$name.pcap" "tcp port $PORT" >"$WORK/$name.tcpdump" 2>&1 &
	tpid=$!
	PIDS="$PIDS $tpid"
	wait_line "$WORK/$name.tcpdump" "listening on"
	rm -f "$WORK/u.sock"
	"$BIN/rpage-client" --connect 127.0.0.1:"$PORT" --uffd-socket "$WORK/u.sock" \
		--once --no-progress "$@" >"$WORK/$name.client" 2>&1 &
	cpid=$!
	wait_line "$WORK/$name.client" "rpage-client: ready"
	"$BIN/rpage-bench" guest --uffd-socket "$WORK/u.sock" --size 8M \
		--seed "$SEED" >"$WORK/$name.guest" 2>&1 || fail "$name: guest failed"
	grep -q " 0 mismatches" "$WORK/$name.guest" || fail "$name: guest saw mismatches"
	wait "$cpid" || fail "$name: client failed"
	# tcpdump may lag behind on a busy machine, and what it has not read
	# when it is stopped is lost: wait until the capture stops growing
	prev=-1 i=0
	while size=$(stat -c %s "$WORK/$name.pcap") && [ "$size" != "$prev" ] && [ $i -lt 40 ]; do
		prev=$size i=$((i + 1))
		sleep 0.3
	done
	kill "$tpid"
	wait "$tpid" 2>/dev/null || true
	grep -h "dropped" "$WORK/$name.tcpdump" | sed "s/^/$name: tcpdump: /"
	stop_server
}

search() { # PCAP: prints how many of the 512 pieces are in it
	python3 - "$WORK/img" "$1" <<'PY'
import random, sys
img = open(sys.argv[1], "rb").read()
cap = open(sys.argv[2], "rb").read()
rnd = random.Random(7)
pieces = [img[o:o + 16] for o in (rnd.randrange(0, len(img) - 16) for _ in range(512))]
print(sum(1 for p in pieces if p in cap), len(cap))
PY
}

capture_run plain
set -- $(search "$WORK/plain.pcap")
echo "plain TCP: $1 of 512 image pieces found in $2 captured bytes"
[ "$1" -ge 256 ] || fail "the search did not find the clear bytes of a plain run"
capture_run tls --psk-file "$WORK/k.psk"
set -- $(search "$WORK/tls.pcap")
echo "TLS: $1 of 512 image pieces found in $2 captured bytes"
# tcpdump on a busy loopback misses a little (the plain run above shows
# how much: a few of the 512 pieces); 7/8 of the image is plenty to show
# that the capture carried the transfer
[ "$2" -gt 7340032 ] || fail "the TLS capture ($2 bytes) is too small to have carried the image: $(grep -h dropped "$WORK/tls.tcpdump" | tr '\n' ' ')"
[ "$1" = 0 ] || fail "the TLS capture holds $1 pieces of the image in clear"
