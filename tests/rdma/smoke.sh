#!/bin/sh
# smoke.sh [VARIANT...] -- guest payload proving the soft-RoCE harness works
# with real verbs, using only rdma-core and perftest tools.
#
# Run from the host:
#   tests/rdma/vm-run.sh build/vm tests/rdma smoke.sh [TIMEOUT_S [VARIANT...]]
# VARIANTs (default: all three, in one boot, torn down in between):
#   single  rxe0 on dummy0; server and client on 10.0.0.1
#   pair    rxe0 on vA 10.0.0.1 <-> rxe1 on vB 10.0.0.2 (clients bind 10.0.0.2)
#   loss    pair + netem loss 1% on both ends
# Tests per variant:
#   ibv_devinfo      the device is visible to libibverbs through the rxe provider
#   ib_read_lat-cm   RDMA READ 4 KiB over rdma_cm (-R); --source_ip in pair
#                    variants.  NOTE: Debian 12's perftest 4.5-0.17 ignores
#                    --source_ip with -R, so this connection stays on rxe0
#                    (10.0.0.1 -> 10.0.0.1, rxe-internal loopback) even in the
#                    pair variants; the packet count it prints shows it.
#   ib_read_lat-gid  RDMA READ 4 KiB, QPs addressed by the GID index read from
#                    sysfs (rxe_gid_index); in pair variants it must cross the
#                    veth (checked with rxe_wire_packets)
#   ib_send_lat-gid  SEND/RECV 4 KiB, same addressing, same check
#   rping            rdma_cm + RDMA READ/WRITE with data verification (-V);
#                    client bound with -I in pair variants; same check
# Env: SMOKE_ITERS (default 200) perftest iterations, SMOKE_PINGS (default 10).
# guest-init has already sourced guest-lib.sh.
set -eu

variants=${*:-single pair loss}
iters=${SMOKE_ITERS:-200}
pings=${SMOKE_PINGS:-10}

# on_wire MIN CMD...: run CMD; in pair variants fail unless at least MIN
# packets crossed the veth meanwhile.
on_wire() {
	local min=$1 before after rc=0
	shift
	before=$(rxe_wire_packets)
	"$@" || rc=$?
	after=$(rxe_wire_packets)
	echo "smoke: $((after - before)) packets on the wire"
	[ "$rc" = 0 ] || return "$rc"
	case $RXE_CLIENT_IP in "$RXE_SERVER_IP") return 0 ;; esac
	if [ $((after - before)) -lt "$min" ]; then
		echo "smoke: ERROR: expected at least $min packets across vA/vB" >&2
		return 1
	fi
}

# perftest over rdma_cm: server on port 18515, -F: ignore CPU-frequency
# warnings (TCG has no stable clock rate).
read_lat_cm() {
	local src=
	[ "$RXE_CLIENT_IP" = "$RXE_SERVER_IP" ] || src="--source_ip $RXE_CLIENT_IP"
	# shellcheck disable=SC2086
	on_wire 0 run_server_client 18515 \
		ib_read_lat -R -F -s 4096 -n "$iters" -d "$RXE_SERVER_DEV" -p 18515 -- \
		ib_read_lat -R -F -s 4096 -n "$iters" -d "$RXE_CLIENT_DEV" -p 18515 $src "$RXE_SERVER_IP"
}

# perftest without rdma_cm: QPs addressed by GID index, connection data
# exchanged over TCP port 18516.  PROG is ib_read_lat or ib_send_lat.
perftest_gid() {
	local prog=$1 gs gc
	gs=$(rxe_gid_index "$RXE_SERVER_DEV" "$RXE_SERVER_IP")
	gc=$(rxe_gid_index "$RXE_CLIENT_DEV" "$RXE_CLIENT_IP")
	echo "smoke: GID index $RXE_SERVER_DEV/$RXE_SERVER_IP=$gs $RXE_CLIENT_DEV/$RXE_CLIENT_IP=$gc"
	on_wire "$iters" run_server_client 18516 \
		"$prog" -F -s 4096 -n "$iters" -d "$RXE_SERVER_DEV" -x "$gs" -p 18516 -- \
		"$prog" -F -s 4096 -n "$iters" -d "$RXE_CLIENT_DEV" -x "$gc" -p 18516 "$RXE_SERVER_IP"
}

# rping: the server handles one connection and exits; -V verifies the data.
rping_test() {
	local src=
	[ "$RXE_CLIENT_IP" = "$RXE_SERVER_IP" ] || src="-I $RXE_CLIENT_IP"
	# shellcheck disable=SC2086
	on_wire "$pings" run_server_client 7174 \
		rping -s -a "$RXE_SERVER_IP" -p 7174 -C "$pings" -S 4096 -- \
		rping -c -a "$RXE_SERVER_IP" -p 7174 -C "$pings" -S 4096 -V $src
}

for v in $variants; do
	echo "smoke: ===== variant $v ====="
	case $v in
	single) rxe_single ;;
	pair) rxe_pair ;;
	loss) rxe_pair && rxe_loss 1 ;;
	*) rpage_die "smoke: unknown variant '$v' (single, pair, loss)" ;;
	esac
	rdma link show
	run_test "$v/ibv_devinfo" ibv_devinfo -d "$RXE_CLIENT_DEV"
	run_test "$v/ib_read_lat-cm" read_lat_cm
	run_test "$v/ib_read_lat-gid" perftest_gid ib_read_lat
	run_test "$v/ib_send_lat-gid" perftest_gid ib_send_lat
	run_test "$v/rping" rping_test
	[ "$v" != loss ] || tc -s qdisc show dev vA
	rxe_teardown
done
summary
