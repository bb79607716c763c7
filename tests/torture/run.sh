#!/bin/sh
# tests/torture/run.sh [-d DURATION] [-s SEED] [-r REPORT] CONFIG...
#
# Runs rpage-torture against rpage in each CONFIG for DURATION (60s, 10m,
# 1h; default 60s): a seeded random workload checked against a shadow model
# of what every page must read (see torture.c). Prints one line per config,
# "TORTURE <config> seed <S>: PASS|FAIL ...", and exits non-zero when any
# failed. Runs on the host and in the soft-RoCE guest (POSIX sh).
#
# CONFIGs (host unless said):
#   local-anon, local-anon-nofill   rpage-client --local, private anonymous
#   tcp-anon, tcp-anon-nofill       rpage-server + rpage-client over TCP
#   tcp-memfd                       shared memfd memory (MADV_REMOVE discards)
#   tcp-huge                        2 MiB hugetlb private memory
#   tcp-hugefs-nofill               2 MiB hugetlbfs shared memory, holes
#                                   punched in parts of pages
#   live-async, live-sync           live migration, dirty tracking by async
#                                   write-protect (PAGEMAP_SCAN) or by
#                                   synchronous write-protect faults
#   live-sync-oldkernel             synchronous, as on kernels before 6.4
#   rdma-anon, rdma-anon-nofill     (soft-RoCE guest) over RDMA
#   host                            every host config
#
# Env: BIN (rpage-server, rpage-client; default build/bin), TBIN
# (rpage-torture; default build/tests), HOST (address for rdma configs),
# TORTURE_THREADS (default 4), KEEP=1 keeps the work directory.
set -u
dur=60s seed= report=
while getopts d:s:r: o; do
	case $o in
	d) dur=$OPTARG ;;
	s) seed=$OPTARG ;;
	r) report=$OPTARG ;;
	*) echo "usage: $0 [-d DURATION] [-s SEED] [-r REPORT] CONFIG..." >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: $0 [-d DURATION] [-s SEED] [-r REPORT] CONFIG..." >&2; exit 2; }
: "${BIN:=build/bin}" "${TBIN:=build/tests}" "${TORTURE_THREADS:=4}"
HOST_CONFIGS="local-anon local-anon-nofill tcp-anon tcp-anon-nofill tcp-memfd tcp-huge tcp-hugefs-nofill live-async live-sync live-sync-oldkernel"
configs=
for c in "$@"; do
	[ "$c" = host ] && c=$HOST_CONFIGS
	configs="$configs $c"
done
W=$(mktemp -d "${TMPDIR:-/tmp}/rpage-torture.XXXXXX")
IMG_SEED=4242
IMG_SIZE=64M
pids=
hp_old=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	pids=
	[ -z "$hp_old" ] || echo "$hp_old" > /proc/sys/vm/nr_hugepages 2>/dev/null
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for FILE PATTERN SECS
wait_for() {
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le $(($3 * 10)) ] || return 1
		sleep 0.1
	done
}

# huge pages for the 2 MiB configs: the region, fresh chunks and the pages
# forked children fault in
need_huge() {
	want=384
	have=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
	[ "$have" -ge "$want" ] && return 0
	total=$(cat /proc/sys/vm/nr_hugepages)
	[ -n "$hp_old" ] || hp_old=$total
	echo $((total + want - have)) > /proc/sys/vm/nr_hugepages 2>/dev/null
	have=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
	[ "$have" -ge "$want" ] || { echo "only $have free huge pages of $want (root? memory?)"; return 1; }
}

run_one() { # CONFIG
	c=$1
	s=${seed:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
	log=$W/$c.log
	backing=anon fill= transport= live= extra_env=
	case $c in
	local-anon) transport=local ;;
	local-anon-nofill) transport=local fill=--no-fill ;;
	tcp-anon) transport=tcp ;;
	tcp-anon-nofill) transport=tcp fill=--no-fill ;;
	tcp-memfd) transport=tcp backing=memfd ;;
	tcp-huge) transport=tcp backing=huge ;;
	tcp-hugefs-nofill) transport=tcp backing=hugefs fill=--no-fill ;;
	rdma-anon) transport=rdma ;;
	rdma-anon-nofill) transport=rdma fill=--no-fill ;;
	live-async) live=async ;;
	live-sync) live=sync ;;
	live-sync-oldkernel) live=sync extra_env=uffd-wp-old-kernel ;;
	*) echo "TORTURE $c: unknown config"; return 1 ;;
	esac
	case $backing in huge*) need_huge >"$log" 2>&1 || { echo "TORTURE $c: FAIL: $(cat "$log")"; return 1; } ;; esac
	if [ -n "$live" ]; then
		RPAGE_INJECT=$extra_env "$TBIN/rpage-torture" --live --tracker "$live" \
			--duration "$dur" --seed "$s" --threads "$TORTURE_THREADS" \
			${report:+--report "$report"} >"$log" 2>&1
		rc=$?
	else
		sock=$W/$c.sock
		[ -e "$W/img" ] || "$TBIN/rpage-torture" mkimage "$W/img" $IMG_SIZE $IMG_SEED || return 1
		case $transport in
		local) src="--local $W/img" ;;
		*)
			host=127.0.0.1 targs= keys=
			[ "$transport" = rdma ] && host=${HOST:?HOST is needed for rdma} targs="--transport rdma"
			if [ "$host" != 127.0.0.1 ]; then
				# beyond loopback rpage authenticates: a key for both ends
				[ -e "$W/keys.psk" ] || "$BIN/rpage-server" --gen-psk "$W/keys.psk" --identity torture >/dev/null ||
					{ echo "TORTURE $c: FAIL: cannot make a key"; return 1; }
				keys="--psk-file $W/keys.psk"
			fi
			# shellcheck disable=SC2086
			"$BIN/rpage-server" --listen "$host:0" --region mem="$W/img" $keys >"$W/$c.server.log" 2>&1 &
			spid=$!
			pids="$pids $spid"
			wait_for "$W/$c.server.log" "rpage-server: ready" 30 || { echo "TORTURE $c: FAIL: the server did not start"; cat "$W/$c.server.log"; return 1; }
			port=$(sed -n 's/.*ready on [^ ]*:\([0-9]*\) .*/\1/p' "$W/$c.server.log")
			src="--connect $host:$port $targs $keys"
			;;
		esac
		# shellcheck disable=SC2086
		"$BIN/rpage-client" $src --uffd-socket "$sock" --no-progress $fill \
			--stats-json "$W/$c.stats.json" >"$W/$c.client.log" 2>&1 &
		cpid=$!
		pids="$pids $cpid"
		wait_for "$W/$c.client.log" "rpage-client: ready" 30 || { echo "TORTURE $c: FAIL: the client did not start"; cat "$W/$c.client.log"; return 1; }
		"$TBIN/rpage-torture" --socket "$sock" --image-seed $IMG_SEED \
			--image-size $IMG_SIZE --backing $backing --duration "$dur" \
			--seed "$s" --threads "$TORTURE_THREADS" \
			${report:+--report "$report"} >"$log" 2>&1
		rc=$?
		kill $cpid ${spid:-} 2>/dev/null
		wait $cpid ${spid:-} 2>/dev/null
		pids=
		# the handler must never have given up on a process
		if [ $rc = 0 ] && grep -E "FAILED|error:" "$W/$c.client.log" >"$W/$c.errors"; then
			echo "rpage-client reported errors:" >>"$log"
			cat "$W/$c.errors" >>"$log"
			rc=1
		fi
	fi
	summary=$(grep "operations" "$log" | sed 's/^rpage-torture: //')
	if [ $rc = 0 ]; then
		echo "TORTURE $c: PASS: $summary"
		return 0
	fi
	echo "TORTURE $c: FAIL (rc=$rc, seed $s): ${summary:-no summary}"
	tail -n 40 "$log" | sed 's/^/    | /'
	[ -z "${cpid:-}" ] || tail -n 20 "$W/$c.client.log" 2>/dev/null | sed 's/^/    client| /'
	return 1
}

failed=
for c in $configs; do
	run_one "$c" || failed="$failed $c"
done
[ -z "$failed" ] || { echo "torture failed:$failed"; exit 1; }
exit 0
