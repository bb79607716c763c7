#!/bin/sh
# rdma-e2e.sh [VARIANT|VARIANT/TEST...] -- guest payload: rpage over real
# verbs (soft-RoCE).
#
# Run from the host (tests/rdma/run-rdma-tests.sh does this):
#   tests/rdma/vm-run.sh build/vm PAYLOAD_DIR rdma-e2e.sh [TIMEOUT_S [ARG...]]
# An ARG is a VARIANT (all its tests) or VARIANT/TEST (that test alone, in
# its variant's topology); `sh rdma-e2e.sh --list` prints every
# VARIANT/TEST, on the host too, without running anything.
# PAYLOAD_DIR holds this script and rpage-server, rpage-client, rpage-bench,
# rpage-keyprobe, and in test/ the test builds of rpage-server and
# rpage-client (fault injection, common/inject.h).
#
# Every server that is not on loopback runs with a pre-shared key (made
# here with rpage-server --gen-psk) and every client with the same key:
# the control connections are TLS 1.3 (kernel TLS: this is Debian's kernel,
# with tls.ko), the RDMA keys travel only there.
#
# VARIANTs (default: nodev ktls single pair loss measure torture, in one boot):
#   nodev    no RDMA device at all: --transport rdma fails with a clear
#            message; auto picks tcp and every byte still arrives
#   ktls     the kernel's TLS record layer for real: after the handshake
#            both ends move their records to the kernel (TCP_ULP tls), the
#            kernel's TLS counters move, sendfile serves pages through
#            it, every byte is verified; fault and fill figures of tls
#            beside plain tcp in the same boot
#   single   rxe0 on dummy0, both ends on it: rpage-server + rpage-client
#            --transport rdma + rpage-bench guest, every byte verified; the
#            server must have served 0 page requests (one-sided READs only);
#            who can READ with which key (rpage-keyprobe: tickets, memory
#            windows bound to one QP, zero-based addresses, revocation);
#            the cap on RDMA connections per session;
#            regions split into 1 MiB memory regions and an injected
#            completion error (the test builds in test/, with fault
#            injection: rdma-max-mr, rdma-read-error) gives a clear message
#            naming the page offset and the device, and no page is corrupted
#   pair     rxe0 on vA <-> rxe1 on vB, client bound with --rdma-dev rxe1
#   loss     pair + netem loss 1% on both ends (ACK timeout 14: fast recovery)
#   torture  rxe_single: rpage-torture (the seeded random workload checked
#            against a shadow model) over RDMA, with and without the fill,
#            for TORTURE_DURATION each (default 60s), seed TORTURE_SEED
#            (default: a new one each run)
#   measure  rxe_single: the same workload over --transport rdma and tcp;
#            prints "RDMA-VS-TCP ..." lines (fault latency p50/p99, fill
#            rate, server CPU per fault) for docs/PERFORMANCE.md
# Env: E2E_SIZE (default 16M) image size, E2E_MEASURE_SIZE (default 16M).
# guest-init has already sourced guest-lib.sh.
set -eu

if [ "${1:-}" = --list ]; then
	sed -n 's/^[[:space:]]*rt \([a-z0-9-]*\/[a-z0-9-]*\) .*/\1/p' "$0"
	exit 0
fi

here=$(pwd)
BIN=${RPAGE_BIN:-$here}
TBIN=$BIN/test
# the variants asked for (always in this order: nodev needs a guest that
# has had no device yet); whole: those run entirely; only: single
# VARIANT/TEST names
all_variants="nodev ktls single pair loss measure torture"
asked= whole= only=
for a in ${*:-$all_variants}; do
	v=${a%%/*}
	case " $all_variants " in *" $v "*) ;; *) rpage_die "rdma-e2e: unknown variant '$v'" ;; esac
	asked="$asked $v"
	if [ "$a" = "$v" ]; then whole="$whole $v"; else only="$only $a"; fi
done
variants=
for v in $all_variants; do
	case " $asked " in *" $v "*) variants="$variants $v" ;; esac
done
size=${E2E_SIZE:-16M}
msize=${E2E_MEASURE_SIZE:-16M}
PORT=7000
W=/tmp/e2e
mkdir -p $W
export RPAGE_RDMA_ACK_TIMEOUT=${RPAGE_RDMA_ACK_TIMEOUT:-14}
VERBOSE=
[ "${E2E_VERBOSE:-0}" = 0 ] || VERBOSE=-v

for b in rpage-server rpage-client rpage-bench; do
	[ -x "$BIN/$b" ] || rpage_die "rdma-e2e: $BIN/$b missing from the payload"
done
# one key for every server and client beyond loopback
"$BIN/rpage-server" --gen-psk $W/k.psk --identity guest >/dev/null ||
	rpage_die "rdma-e2e: rpage-server --gen-psk failed"
PSK="--psk-file $W/k.psk"

# ---- helpers ----------------------------------------------------------------

# wait_file PATH [SECS [PID]]: fails early when PID exits
wait_file() {
	local n=0
	while [ ! -e "$1" ]; do
		[ $n -lt $((${2:-20} * 10)) ] || { echo "rdma-e2e: $1 did not appear" >&2; return 1; }
		if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
			echo "rdma-e2e: process $3 exited before $1 appeared" >&2
			return 1
		fi
		sleep 0.1
		n=$((n + 1))
	done
}

# wait_pid PID SECS: wait for PID to exit (its status), or kill it and
# return 124
wait_pid() {
	local n=0 rc=0
	while kill -0 "$1" 2>/dev/null; do
		if [ $n -ge $(($2 * 10)) ]; then
			echo "rdma-e2e: process $1 still running after $2 s: killing it" >&2
			kill -KILL "$1" 2>/dev/null || true
			wait "$1" 2>/dev/null || true
			return 124
		fi
		sleep 0.1
		n=$((n + 1))
	done
	wait "$1" || rc=$?
	return $rc
}

# cpu_ticks PID: utime + stime of PID (clock ticks)
cpu_ticks() {
	local s
	read -r s <"/proc/$1/stat"
	s=${s##*) }
	# shellcheck disable=SC2086
	set -- $s
	echo $((${12} + ${13}))
}

# json_num FILE KEY: first numeric value of "KEY": in FILE
json_num() {
	sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" "$1" | head -n 1
}

SPID=
server_start() { # ADDR [ENV=VALUE...]
	local addr=$1
	shift
	rm -f $W/server.out
	env "$@" "${SERVER_BIN:-$BIN/rpage-server}" $VERBOSE --listen "$addr:$PORT" --region mem=$W/img \
		${SERVER_ARGS:-$PSK} >$W/server.out 2>&1 &
	SPID=$!
	wait_listen $PORT 20 $SPID || { cat $W/server.out; return 1; }
	local n=0
	while ! grep -q 'ready on' $W/server.out; do
		[ $n -lt 100 ] || { cat $W/server.out; return 1; }
		sleep 0.1
		n=$((n + 1))
	done
	cat $W/server.out
}

server_stop() { # prints the server's output; fails if it did not stop cleanly
	local rc=0
	[ -n "$SPID" ] || return 0
	kill -TERM "$SPID" 2>/dev/null || true
	wait_pid "$SPID" 20 || rc=$?
	SPID=
	sed 's/^/server: /' $W/server.out
	return $rc
}

# run_client_guest NAME TRANSPORT [CLIENT_ARG...]: one full migration of
# the image through rpage-client to a fresh rpage-bench guest; checks every
# byte (the guest does) and the client's exit status. Output in $W/NAME.*
run_client_guest() {
	local name=$1 tr=$2 cpid crc=0 grc=0
	shift 2
	rm -f $W/u.sock $W/$name.json
	"$BIN/rpage-client" $VERBOSE --connect "$RXE_SERVER_IP:$PORT" --transport "$tr" \
		--uffd-socket $W/u.sock --once --no-progress \
		--stats-json $W/$name.json ${CLIENT_ARGS:-$PSK} "$@" >$W/$name.client 2>&1 &
	cpid=$!
	if ! wait_file $W/u.sock 30 $cpid; then
		kill -KILL $cpid 2>/dev/null || true
		wait $cpid || true
		sed 's/^/client: /' $W/$name.client
		return 1
	fi
	[ -z "${CPU_BEFORE_FILE:-}" ] || cpu_ticks "$SPID" >"$CPU_BEFORE_FILE"
	rpage_timeout "${E2E_GUEST_TIMEOUT:-60}" "$BIN/rpage-bench" guest \
		--uffd-socket $W/u.sock --size "$size" \
		${GUEST_ARGS:-} >$W/$name.guest 2>&1 || grc=$?
	wait_pid $cpid 20 || crc=$?
	[ -z "${CPU_AFTER_FILE:-}" ] || cpu_ticks "$SPID" >"$CPU_AFTER_FILE"
	sed 's/^/guest: /' $W/$name.guest
	sed 's/^/client: /' $W/$name.client
	[ "$grc" = 0 ] || { echo "rdma-e2e: guest failed rc=$grc" >&2; return 1; }
	grep -q ' 0 mismatches' $W/$name.guest || { echo "rdma-e2e: guest reported mismatches" >&2; return 1; }
	[ "$crc" = 0 ] || { echo "rdma-e2e: client failed rc=$crc" >&2; return 1; }
	grep -q "over $tr\$" $W/$name.client || [ "$tr" = auto ] ||
		{ echo "rdma-e2e: client did not use $tr" >&2; return 1; }
	return 0
}

# ---- tests --------------------------------------------------------------------

# the torture test over RDMA: tests/torture/run.sh, as on the host
t_torture() { # CONFIG
	[ -x "$here/rpage-torture" ] || { echo "rdma-e2e: rpage-torture missing from the payload" >&2; return 1; }
	BIN=$BIN TBIN=$here HOST=$RXE_SERVER_IP TORTURE_THREADS=${TORTURE_THREADS:-3} \
		sh "$here/torture-run.sh" -d "${TORTURE_DURATION:-60s}" \
		${TORTURE_SEED:+-s "$TORTURE_SEED"} "$1"
}

# no device: rdma fails clearly, auto falls back to tcp
t_nodev_rdma_fails() {
	local rc=0
	"$BIN/rpage-server" --listen 127.0.0.1:$PORT --region mem=$W/img >$W/server.out 2>&1 &
	SPID=$!
	wait_listen $PORT 20 $SPID || return 1
	sleep 0.2
	grep -q 'no RDMA' $W/server.out || { cat $W/server.out; echo "rdma-e2e: server did not say it has no RDMA" >&2; return 1; }
	"$BIN/rpage-client" --connect 127.0.0.1:$PORT --transport rdma \
		--uffd-socket $W/u.sock --once >$W/nodev.client 2>&1 || rc=$?
	cat $W/nodev.client
	server_stop >/dev/null || true
	[ "$rc" != 0 ] || { echo "rdma-e2e: --transport rdma succeeded without a device" >&2; return 1; }
	grep -q -- '--transport rdma: no RDMA device' $W/nodev.client ||
		{ echo "rdma-e2e: no clear 'no RDMA device' message" >&2; return 1; }
}

t_nodev_auto_tcp() {
	RXE_SERVER_IP=127.0.0.1
	server_start 127.0.0.1 || return 1
	run_client_guest nodev-auto auto || { server_stop; return 1; }
	server_stop || return 1
	grep -q 'using tcp' $W/nodev-auto.client || { echo "rdma-e2e: auto did not say it chose tcp" >&2; return 1; }
	grep -q 'over tcp$' $W/nodev-auto.client
}

# a full migration over RDMA; the server must not have served any page
t_rdma() { # NAME [CLIENT_ARG...]
	local name=$1
	shift
	server_start "$RXE_SERVER_IP" ${SERVER_ENV:-} || return 1
	grep -q 'RDMA on' $W/server.out || { server_stop; echo "rdma-e2e: server has no RDMA listener" >&2; return 1; }
	run_client_guest "$name" rdma "$@" || { server_stop; return 1; }
	server_stop >$W/$name.server || { cat $W/$name.server; return 1; }
	cat $W/$name.server
	grep -q 'using rdma on' $W/$name.client || { echo "rdma-e2e: client did not report rdma" >&2; return 1; }
	grep -q ' 0 page requests' $W/$name.server ||
		{ echo "rdma-e2e: the server served page requests: not one-sided" >&2; return 1; }
	case ${SERVER_ENV:-} in RPAGE_INJECT=*)
		grep -q "fault injection armed: ${SERVER_ENV#RPAGE_INJECT=}" $W/$name.server ||
			{ echo "rdma-e2e: the server did not arm ${SERVER_ENV#RPAGE_INJECT=}" >&2; return 1; } ;;
	esac
}

# auto with devices on both ends picks rdma
t_auto_rdma() {
	server_start "$RXE_SERVER_IP" || return 1
	run_client_guest auto-rdma auto "$@" || { server_stop; return 1; }
	server_stop >/dev/null || return 1
	grep -q 'transport auto: using rdma' $W/auto-rdma.client &&
		grep -q 'over rdma$' $W/auto-rdma.client
}

# recovery_end NAME GPID CPID AFTER: the process GPID must end within 120 s
# of AFTER (named in the message), with status 0 and every byte right; the
# client CPID and the server are stopped and the logs $W/NAME.client and
# $W/NAME.guest printed. Non-zero when any of that fails.
recovery_end() {
	local name=$1 gpid=$2 cpid=$3 n=0 grc=0 rc=0
	while kill -0 $gpid 2>/dev/null && [ $n -lt 1200 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if kill -0 $gpid 2>/dev/null; then
		echo "rdma-e2e: the process is still blocked 120 s after $4" >&2
		kill -KILL $gpid
		rc=1
	fi
	wait $gpid || grc=$?
	kill -TERM $cpid 2>/dev/null || true
	wait_pid $cpid 20 || { [ $? != 124 ] || rc=1; }
	server_stop >/dev/null || rc=1
	sed 's/^/client: /' $W/$name.client
	sed 's/^/guest: /' $W/$name.guest
	[ "$grc" = 0 ] || { echo "rdma-e2e: the process failed (status $grc)" >&2; rc=1; }
	grep -q " 0 mismatches" $W/$name.guest || { echo "rdma-e2e: a page was wrong" >&2; rc=1; }
	return $rc
}

# a completion error on the urgent QP (an injected failed READ: the QP goes
# to the error state): the client says which READ failed, reconnects, sends
# again the page request that was in flight, and the process completes with
# every byte right
t_inject() {
	local cpid gpid rc=0
	server_start "$RXE_SERVER_IP" || return 1
	rm -f $W/u.sock
	RPAGE_INJECT=rdma-read-error=40 "$TBIN/rpage-client" --connect "$RXE_SERVER_IP:$PORT" \
		--transport rdma --uffd-socket $W/u.sock --no-progress --fill-depth 2 $PSK \
		>$W/inject.client 2>&1 &
	cpid=$!
	wait_file $W/u.sock 30 $cpid || rc=1
	"$BIN/rpage-bench" guest --uffd-socket $W/u.sock --size "$size" >$W/inject.guest 2>&1 &
	gpid=$!
	recovery_end inject $gpid $cpid "the error" || rc=1
	grep -q "RDMA READ .*failed: remote access error" $W/inject.client ||
		{ echo "rdma-e2e: no clear completion-error message" >&2; return 1; }
	grep -q "reconnected after" $W/inject.client ||
		{ echo "rdma-e2e: the client did not reconnect" >&2; return 1; }
	return $rc
}

# the server is killed (-9) mid-migration and started again on the same
# image and port 2 s later: the client's READs fail (retry exceeded or
# flushed) and it says which page; it reconnects, asks the restarted server
# for its RDMA connection data again, checks the region is the same image,
# and the process completes with every byte right
t_server_dies() {
	local cpid gpid rc=0
	server_start "$RXE_SERVER_IP" || return 1
	rm -f $W/u.sock
	"$BIN/rpage-client" --connect "$RXE_SERVER_IP:$PORT" --transport rdma \
		--uffd-socket $W/u.sock --no-progress $PSK >$W/dies.client 2>&1 &
	cpid=$!
	wait_file $W/u.sock 30 $cpid || rc=1
	"$BIN/rpage-bench" guest --uffd-socket $W/u.sock --size "$size" >$W/dies.guest 2>&1 &
	gpid=$!
	sleep 1
	kill -KILL "$SPID"
	wait "$SPID" 2>/dev/null || true
	SPID=
	if grep -q 'is complete' $W/dies.client; then
		echo "rdma-e2e: the migration completed before the server died (nothing tested)" >&2
		kill -KILL $gpid $cpid 2>/dev/null
		return 1
	fi
	sleep 2
	kill -0 $gpid 2>/dev/null || { echo "rdma-e2e: the process ended while the server was down" >&2; rc=1; }
	server_start "$RXE_SERVER_IP" >/dev/null || rc=1
	recovery_end dies $gpid $cpid "the restart" || rc=1
	grep -q "RDMA READ .*on device $RXE_CLIENT_DEV failed" $W/dies.client ||
		{ echo "rdma-e2e: no clear completion-error message" >&2; return 1; }
	grep -q "reconnected after" $W/dies.client ||
		{ echo "rdma-e2e: the client did not reconnect" >&2; return 1; }
	return $rc
}

# the client's netdev goes down for 4 s in the middle of a migration and
# comes back: the RDMA connections time out or carry on; either way the
# process completes with every byte right
t_netdev_down() {
	local cpid gpid rc=0
	server_start "$RXE_SERVER_IP" || return 1
	rm -f $W/u.sock
	"$BIN/rpage-client" --connect "$RXE_SERVER_IP:$PORT" --transport rdma \
		--rdma-dev "$RXE_CLIENT_DEV" --uffd-socket $W/u.sock --no-progress $PSK \
		>$W/down.client 2>&1 &
	cpid=$!
	wait_file $W/u.sock 30 $cpid || rc=1
	"$BIN/rpage-bench" guest --uffd-socket $W/u.sock --size "$size" >$W/down.guest 2>&1 &
	gpid=$!
	sleep 1
	grep -q 'is complete' $W/down.client &&
		{ echo "rdma-e2e: the migration completed before the link went down (nothing tested)" >&2; rc=1; }
	ip link set vB down
	sleep 4
	ip link set vB up
	recovery_end down $gpid $cpid "the link came back" || rc=1
	return $rc
}

# a client's keys stop working when its control connection ends:
# rpage-keyprobe READs with session 1's key, ends session 1, and READs with
# the old key on session 1's QP and on a new session's QP (both must fail,
# remote access error on the new one), then with session 2's own key
t_old_key_revoked() {
	local rc=0
	[ -x "$BIN/rpage-keyprobe" ] || { echo "rdma-e2e: $BIN/rpage-keyprobe missing from the payload" >&2; return 1; }
	server_start "$RXE_SERVER_IP" || return 1
	rpage_timeout 90 "$BIN/rpage-keyprobe" $PSK "$RXE_SERVER_IP" $PORT $W/img || rc=$?
	server_stop >$W/keyprobe.server || { cat $W/keyprobe.server; return 1; }
	cat $W/keyprobe.server
	[ "$rc" = 0 ] || { echo "rdma-e2e: rpage-keyprobe failed rc=$rc" >&2; return 1; }
}

# the cap on RDMA connections per session: the 4th of a session is refused
# at its ticket, the session goes on
t_rdma_caps() {
	local rc=0
	SERVER_ARGS="$PSK --max-rdma-per-session 3"
	server_start "$RXE_SERVER_IP" || return 1
	SERVER_ARGS=
	rpage_timeout 90 "$BIN/rpage-keyprobe" $PSK --caps 3 "$RXE_SERVER_IP" $PORT $W/img || rc=$?
	server_stop >$W/caps.server || { cat $W/caps.server; return 1; }
	cat $W/caps.server
	[ "$rc" = 0 ] || { echo "rdma-e2e: rpage-keyprobe --caps failed rc=$rc" >&2; return 1; }
	grep -q "ticket refused: no more RDMA connections: 3 per session" $W/caps.server ||
		{ echo "rdma-e2e: the refusal is not logged" >&2; return 1; }
}

# tls_counter NAME: a counter of /proc/net/tls_stat
tls_counter() {
	awk -v k="$1" '$1 == k { print $2 }' /proc/net/tls_stat
}

# the kernel's TLS record layer: both ends move to it after the handshake
t_ktls() {
	local tx0 rx0 tx1 rx1
	modprobe tls || { echo "rdma-e2e: no tls module in the image" >&2; return 1; }
	[ -r /proc/net/tls_stat ] || { echo "rdma-e2e: no /proc/net/tls_stat" >&2; return 1; }
	grep -q '\btls\b' /proc/sys/net/ipv4/tcp_available_ulp ||
		{ echo "rdma-e2e: tls is not an available ULP" >&2; return 1; }
	tx0=$(tls_counter TlsTxSw)
	rx0=$(tls_counter TlsRxSw)
	RXE_SERVER_IP=127.0.0.1
	server_start 127.0.0.1 || return 1
	run_client_guest ktls tcp || { server_stop; return 1; }
	server_stop >$W/ktls.server || { cat $W/ktls.server; return 1; }
	cat $W/ktls.server
	tx1=$(tls_counter TlsTxSw)
	rx1=$(tls_counter TlsRxSw)
	echo "rdma-e2e: kernel TLS sessions: TlsTxSw $tx0 -> $tx1, TlsRxSw $rx0 -> $rx1"
	grep -q "connection to the source: TLS1.3 PSK 'guest' AES-128-GCM X25519, kernel TLS" $W/ktls.client ||
		{ echo "rdma-e2e: the client did not move to kernel TLS" >&2; return 1; }
	grep -q "TLS1.3 PSK 'guest' AES-128-GCM X25519, kernel TLS" $W/ktls.server ||
		{ echo "rdma-e2e: the server did not move to kernel TLS" >&2; return 1; }
	# control, urgent and bulk: three connections, both directions, on
	# each side of loopback
	[ $((tx1 - tx0)) -ge 6 ] && [ $((rx1 - rx0)) -ge 6 ] ||
		{ echo "rdma-e2e: the kernel's TLS counters did not move" >&2; return 1; }
	# --no-ktls keeps the records in user space: the counters stay
	SERVER_ARGS="$PSK --no-ktls"
	server_start 127.0.0.1 || return 1
	SERVER_ARGS=
	tx0=$(tls_counter TlsTxSw)
	CLIENT_ARGS="$PSK --no-ktls"
	run_client_guest ktls-off tcp || { CLIENT_ARGS=; server_stop; return 1; }
	CLIENT_ARGS=
	server_stop >/dev/null || return 1
	grep -q "kernel TLS not used (no_ktls)" $W/ktls-off.client ||
		{ echo "rdma-e2e: --no-ktls not reported" >&2; return 1; }
	[ "$(tls_counter TlsTxSw)" = "$tx0" ] ||
		{ echo "rdma-e2e: --no-ktls still used kernel TLS" >&2; return 1; }
}

# the same workload over rdma and tcp in this boot; prints the ratios
measure_one() { # TRANSPORT
	local tr=$1 b a
	server_start "$RXE_SERVER_IP" || return 1
	# faults only: latency and server CPU per fault
	CPU_BEFORE_FILE=$W/m-$tr.cpu0 CPU_AFTER_FILE=$W/m-$tr.cpu1
	GUEST_ARGS="--order rand"
	run_client_guest m-$tr-fault "$tr" --no-fill || { server_stop; return 1; }
	CPU_BEFORE_FILE= CPU_AFTER_FILE=
	# fill: background fill rate (the guest touches 1% and then waits on
	# the sequential check)
	GUEST_ARGS="--touch 0.01"
	run_client_guest m-$tr-fill "$tr" || { server_stop; return 1; }
	GUEST_ARGS=
	server_stop >$W/m-$tr.server || return 1
	b=$(cat $W/m-$tr.cpu0)
	a=$(cat $W/m-$tr.cpu1)
	echo "$tr $(json_num $W/m-$tr-fault.json p50) $(json_num $W/m-$tr-fault.json p99)" \
		"$(json_num $W/m-$tr-fault.json faults) $((a - b))" \
		"$(json_num $W/m-$tr-fill.json bytes_fill) $(json_num $W/m-$tr-fill.json resident_s)" >$W/m-$tr.res
}

# live migration of a running workload whose post-copy faults are RDMA
# READs of the paused source's memory; the guest's 6.1 kernel has neither
# async uffd-wp nor WP_UNPOPULATED, so the synchronous tracker with
# populated page tables is what runs here
t_live_rdma() {
	local out=$W/live.out rc=0
	rpage_timeout 150 "$BIN/rpage-bench" migrate --host "$RXE_SERVER_IP" $PSK \
		--transport rdma --size 32M --workload rand --write-rate 20 \
		--duration 3 --mode hybrid --switch-after 300 >$out 2>&1 || rc=$?
	cat $out
	[ "$rc" = 0 ] || { echo "rdma-e2e: live migration failed rc=$rc" >&2; return 1; }
	grep -q '^verify *PASS' $out || { echo "rdma-e2e: live migration not verified" >&2; return 1; }
	grep -q 'using rdma' $out || { echo "rdma-e2e: post-copy did not use rdma" >&2; return 1; }
	grep -q 'tracking *in this run: uffd-wp synchronous' $out ||
		{ echo "rdma-e2e: expected the synchronous tracker on this kernel" >&2; return 1; }
}

t_measure() {
	# plain, as the figures recorded before TLS existed: RDMA's data
	# path has no TLS, and the comparison is of the data paths
	SERVER_ARGS=--insecure
	CLIENT_ARGS=--insecure
	measure_one rdma || return 1
	measure_one tcp || return 1
	SERVER_ARGS=
	CLIENT_ARGS=
	awk -v hz=100 '
	{ t[$1] = 1; p50[$1] = $2; p99[$1] = $3; f[$1] = $4; cpu[$1] = $5;
	  mbs[$1] = ($7 > 0) ? $6 / 1e6 / $7 : 0 }
	END {
		for (k in t)
			printf "RDMA-VS-TCP %s: fault p50 %.1f us, p99 %.1f us, %d faults, server CPU %.1f us/fault, fill %.1f MB/s\n",
				k, p50[k], p99[k], f[k], f[k] ? cpu[k] * 1e6 / hz / f[k] : 0, mbs[k]
		printf "RDMA-VS-TCP ratio rdma/tcp: fault p50 %.2f, p99 %.2f, fill rate %.2f, server CPU per fault %.3f\n",
			p50["rdma"] / p50["tcp"], p99["rdma"] / p99["tcp"],
			mbs["tcp"] ? mbs["rdma"] / mbs["tcp"] : 0,
			cpu["tcp"] ? cpu["rdma"] / cpu["tcp"] : 0
	}' $W/m-rdma.res $W/m-tcp.res
}

# ---- main ---------------------------------------------------------------------

# rt NAME CMD...: run_test NAME CMD... when NAME was asked for (its whole
# variant, or NAME itself)
rt() {
	case " $whole " in *" ${1%%/*} "*) run_test "$@"; return ;; esac
	case " $only " in *" $1 "*) run_test "$@" ;; esac
	return 0
}
whole_variant() {
	case " $whole " in *" $1 "*) return 0 ;; esac
	return 1
}

"$BIN/rpage-bench" mkimage $W/img "$size" || rpage_die "mkimage failed"
for v in $variants; do
	echo "rdma-e2e: ===== variant $v ====="
	case $v in
	nodev)
		[ -z "$(ls /sys/class/infiniband 2>/dev/null)" ] || rpage_die "nodev: RDMA devices exist"
		rt nodev/rdma-fails-clearly t_nodev_rdma_fails
		rt nodev/auto-picks-tcp t_nodev_auto_tcp
		continue
		;;
	ktls)
		rt ktls/kernel-record-layer t_ktls
		# figures: kernel TLS beside plain TCP in this boot (rpage-bench's
		# own checks decide; these do not gate)
		whole_variant ktls || continue
		echo "rdma-e2e: INFO: rpage-bench fault -t tcp,tls -n 1000 -r 3 --batch 2048 --image-size $size"
		rpage_timeout 300 "$BIN/rpage-bench" fault -t tcp,tls -n 1000 -r 3 --batch 2048 --image-size "$size" ||
			echo "rdma-e2e: INFO: rpage-bench fault failed rc=$?"
		echo "rdma-e2e: INFO: rpage-bench fill -t tcp,tls -s $size -r 3"
		rpage_timeout 300 "$BIN/rpage-bench" fill -t tcp,tls -s "$size" -r 3 ||
			echo "rdma-e2e: INFO: rpage-bench fill failed rc=$?"
		continue
		;;
	single)
		rxe_single
		SERVER_BIN=$TBIN/rpage-server SERVER_ENV=RPAGE_INJECT=rdma-max-mr=1048576
		rt single/rdma-split-mr t_rdma single
		SERVER_BIN= SERVER_ENV=
		rt single/auto-picks-rdma t_auto_rdma
		rt single/rdma-dev t_rdma single-dev --rdma-dev "$RXE_CLIENT_DEV" --fill-depth 16 --fill-chunk 262144
		rt single/completion-error t_inject
		rt single/server-restart t_server_dies
		rt single/keys-only-where-given t_old_key_revoked
		rt single/rdma-caps t_rdma_caps
		rt single/live-postcopy-rdma t_live_rdma
		;;
	pair)
		rxe_pair
		rt pair/rdma t_rdma pair --rdma-dev "$RXE_CLIENT_DEV"
		rt pair/netdev-down t_netdev_down
		;;
	loss)
		rxe_pair
		rxe_loss 1
		rt loss/rdma t_rdma loss --rdma-dev "$RXE_CLIENT_DEV"
		;;
	measure)
		rxe_single
		if [ "$msize" != "$size" ]; then
			"$BIN/rpage-bench" mkimage $W/img "$msize" || rpage_die "mkimage failed"
		fi
		size=$msize
		rt measure/rdma-vs-tcp t_measure
		# the library's fill and fault paths alone, same boot (figures
		# only: rpage-bench's own checks decide, these do not gate)
		whole_variant measure || { rxe_teardown; continue; }
		echo "rdma-e2e: INFO: rpage-bench fill -t tcp,rdma --host $RXE_SERVER_IP -s $msize -r 3"
		rpage_timeout 300 "$BIN/rpage-bench" fill -t tcp,rdma --host "$RXE_SERVER_IP" -s "$msize" -r 3 ||
			echo "rdma-e2e: INFO: rpage-bench fill failed rc=$?"
		echo "rdma-e2e: INFO: rpage-bench fault -t tcp,rdma --host $RXE_SERVER_IP -n 1000 -r 3 --batch 2048 --image-size $msize"
		rpage_timeout 300 "$BIN/rpage-bench" fault -t tcp,rdma --host "$RXE_SERVER_IP" -n 1000 -r 3 --batch 2048 \
			--image-size "$msize" || echo "rdma-e2e: INFO: rpage-bench fault failed rc=$?"
		;;
	torture)
		rxe_single
		# each runs TORTURE_DURATION, then checks every page once more
		RPAGE_TEST_TIMEOUT=${TORTURE_TEST_TIMEOUT:-400}
		rt torture/rdma-anon t_torture rdma-anon
		rt torture/rdma-anon-nofill t_torture rdma-anon-nofill
		;;
	*) rpage_die "rdma-e2e: unknown variant '$v'" ;;
	esac
	rxe_teardown
done
summary
