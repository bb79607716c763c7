# guest-lib.sh -- shell library for payload scripts in the soft-RoCE guest.
# busybox sh; sourced by guest-init before the payload (payloads need not
# source it again).  Installed in the guest as /usr/lib/rpage/guest-lib.sh.
#
# Topologies (one at a time; rxe_teardown returns to a clean state):
#   rxe_single        dummy0 10.0.0.1/24 + rxe0
#   rxe_pair          veth vA 10.0.0.1/24 (rxe0) <-> vB 10.0.0.2/24 (rxe1), one
#                     namespace, policy routing so traffic really crosses the veth
#   rxe_loss PCT      (after rxe_pair) netem loss PCT% on vA and vB
#   rxe_teardown      rdma link delete, delete links, restore rules and sysctls
# They export RXE_SERVER_IP RXE_CLIENT_IP RXE_SERVER_DEV RXE_CLIENT_DEV.
# In the pair topology the client MUST bind its source address to
# $RXE_CLIENT_IP (rping -I, rdma_resolve_addr with a source address, perftest
# -d rxe1 -x <GID index of 10.0.0.2>; Debian 12's perftest ignores
# --source_ip with -R); otherwise it uses 10.0.0.1 and rxe0 and rxe loops the
# traffic back internally without crossing the veth.
#
# Helpers:
#   rxe_gid_index DEV IP [PORT]    print the GID index of RoCE v2 ::ffff:IP
#   rxe_wait_active DEV [SECS]     wait until DEV port 1 is ACTIVE
#   rxe_wire_packets               packets sent so far on the topology's netdevs
#   wait_listen PORT [SECS [PID]]  wait for an rdma_cm or TCP listener on PORT
#   run_server_client PORT SERVER... -- CLIENT...
#   rpage_timeout SECS CMD...      run CMD (program or function); 124 on timeout
#   run_test NAME CMD...           PASS/FAIL line with time; counts
#   summary                        "N passed, N failed"; non-zero if any failed
#   rpage_die MSG                  print an error and exit 1
# ip and tc are shell functions calling /usr/bin/ip and /usr/bin/tc (busybox
# sh would otherwise run its own applets, which cannot create veth pairs).

RPAGE_PASSED=${RPAGE_PASSED:-0}
RPAGE_FAILED=${RPAGE_FAILED:-0}
RPAGE_FAILED_NAMES=${RPAGE_FAILED_NAMES:-}
# shellcheck disable=SC2034 # read by payloads
RPAGE_LAST_RC=0
RPAGE_TOPO=
RPAGE_RXE_DEVS=
RPAGE_SAVED_SYSCTL=
RPAGE_NTIMEOUT=0

ip() { /usr/bin/ip "$@"; }
tc() { /usr/bin/tc "$@"; }

rpage_die() {
	echo "guest-lib: ERROR: $*" >&2
	exit 1
}

# seconds since boot, two decimals
rpage_uptime() {
	local u
	read -r u _ </proc/uptime
	echo "$u"
}

# _rpage_tree PID: PID and all its descendants (read from /proc, no forks)
_rpage_tree() {
	local tree=" $1 " all='' f s p e added=1
	for f in /proc/[0-9]*/stat; do
		read -r s 2>/dev/null <"$f" || continue
		p=${s%% *}
		s=${s##*) }
		# shellcheck disable=SC2086
		set -- $s
		all="$all $p:$2"
	done
	while [ $added = 1 ]; do
		added=0
		for e in $all; do
			case $tree in
			*" ${e%:*} "*) ;;
			*" ${e#*:} "*) tree="$tree${e%:*} " added=1 ;;
			esac
		done
	done
	echo $tree
}

# rpage_kill_tree PID [SIG]: signal PID and all its descendants
rpage_kill_tree() {
	local pids
	pids=$(_rpage_tree "$1")
	# shellcheck disable=SC2086
	[ -z "$pids" ] || kill -"${2:-TERM}" $pids 2>/dev/null || true
}

# rpage_timeout SECS CMD...: run CMD (a program or a shell function) with a
# time limit.  Returns CMD's status, or 124 after killing CMD and all its
# descendants (TERM, then KILL 3 s later) when SECS elapse.
rpage_timeout() {
	[ $# -ge 2 ] || rpage_die "usage: rpage_timeout SECS CMD..."
	local secs=$1 pid wd rc=0 flag
	shift
	case $secs in '' | *[!0-9]*) rpage_die "rpage_timeout: bad SECS '$secs'" ;; esac
	RPAGE_NTIMEOUT=$((RPAGE_NTIMEOUT + 1))
	flag=/tmp/.rpage-timeout.$$.$RPAGE_NTIMEOUT
	rm -f "$flag"
	"$@" &
	pid=$!
	(
		sleep "$secs"
		: >"$flag"
		pids=$(_rpage_tree "$pid")
		echo "guest-lib: timeout after ${secs}s: $*" >&2
		kill -TERM $pids 2>/dev/null
		n=0
		while [ $n -lt 30 ]; do
			alive=
			for p in $pids; do
				! kill -0 "$p" 2>/dev/null || alive="$alive $p"
			done
			[ -n "$alive" ] || exit 0
			sleep 0.1
			n=$((n + 1))
		done
		echo "guest-lib: SIGKILL to$alive" >&2
		kill -KILL $alive 2>/dev/null
	) &
	wd=$!
	wait "$pid" || rc=$?
	if [ -e "$flag" ]; then
		wait "$wd" 2>/dev/null || true
		rm -f "$flag"
		return 124
	fi
	rpage_kill_tree "$wd" KILL
	wait "$wd" 2>/dev/null || true
	return $rc
}

# run_test NAME CMD...: run CMD with a timeout of $RPAGE_TEST_TIMEOUT s
# (default 120), print "PASS NAME (Xs)" or "FAIL NAME rc=N (Xs)" and count.
# Always returns 0 (so `set -e` payloads go on); the status is in
# $RPAGE_LAST_RC.
run_test() {
	[ $# -ge 2 ] || rpage_die "usage: run_test NAME CMD..."
	local name=$1 t0 t1 dt rc=0
	shift
	echo "=== RUN $name: $*"
	t0=$(rpage_uptime)
	rpage_timeout "${RPAGE_TEST_TIMEOUT:-120}" "$@" || rc=$?
	t1=$(rpage_uptime)
	dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	if [ "$rc" = 0 ]; then
		echo "PASS $name (${dt}s)"
		RPAGE_PASSED=$((RPAGE_PASSED + 1))
	else
		echo "FAIL $name rc=$rc (${dt}s)"
		RPAGE_FAILED=$((RPAGE_FAILED + 1))
		RPAGE_FAILED_NAMES="$RPAGE_FAILED_NAMES $name"
	fi
	# shellcheck disable=SC2034 # read by payloads
	RPAGE_LAST_RC=$rc
	return 0
}

# summary: "N passed, N failed" on its own line; returns 1 if any test
# failed or if no test ran at all.
summary() {
	[ -z "$RPAGE_FAILED_NAMES" ] || echo "failed:$RPAGE_FAILED_NAMES"
	echo "$RPAGE_PASSED passed, $RPAGE_FAILED failed"
	[ "$RPAGE_FAILED" = 0 ] || return 1
	[ "$RPAGE_PASSED" -gt 0 ] || { echo "guest-lib: no test ran" >&2; return 1; }
	return 0
}

# rxe_wait_active DEV [SECS]: wait until port 1 of DEV is ACTIVE
rxe_wait_active() {
	local dev=$1 secs=${2:-20} n=0 st=
	local f=/sys/class/infiniband/$dev/ports/1/state
	while [ $n -lt $((secs * 10)) ]; do
		st=
		[ -r "$f" ] && read -r st <"$f"
		case $st in *ACTIVE*) return 0 ;; esac
		sleep 0.1
		n=$((n + 1))
	done
	rpage_die "$dev port 1 not ACTIVE after ${secs}s (state: ${st:-no device})"
}

_rpage_rxe_add() { # NAME NETDEV
	rdma link add "$1" type rxe netdev "$2" || rpage_die "rdma link add $1 type rxe netdev $2 failed"
	RPAGE_RXE_DEVS="$RPAGE_RXE_DEVS $1"
	rxe_wait_active "$1"
}

_rpage_need_clean() {
	[ -z "$RPAGE_TOPO" ] || rpage_die "$1: topology '$RPAGE_TOPO' is still up: call rxe_teardown first"
}

_rpage_sysctl() { # KEY VALUE: set /proc/sys/KEY, remembering the old value
	local f=/proc/sys/$1 old
	# not `read`: sysctl files return EOF to any read at a non-zero offset,
	# and busybox read reads one byte at a time
	old=$(cat "$f") || rpage_die "cannot read $f"
	RPAGE_SAVED_SYSCTL="$RPAGE_SAVED_SYSCTL $1=$old"
	echo "$2" >"$f" || rpage_die "cannot write $2 to $f"
}

# rxe_single: dummy0 10.0.0.1/24 with rxe0; server and client share it.
rxe_single() {
	_rpage_need_clean rxe_single
	RPAGE_TOPO=single
	ip link add dummy0 type dummy || rpage_die "cannot create dummy0"
	ip addr add 10.0.0.1/24 dev dummy0 || rpage_die "cannot address dummy0"
	ip link set dummy0 up || rpage_die "cannot bring dummy0 up"
	_rpage_rxe_add rxe0 dummy0
	export RXE_SERVER_IP=10.0.0.1 RXE_CLIENT_IP=10.0.0.1
	export RXE_SERVER_DEV=rxe0 RXE_CLIENT_DEV=rxe0
	echo "guest-lib: rxe_single up: rxe0 on dummy0 10.0.0.1"
}

# rxe_pair: veth vA 10.0.0.1/24 (rxe0) <-> vB 10.0.0.2/24 (rxe1) in this
# namespace.  Without policy routing the kernel short-cuts local-to-local
# traffic through lo and QPs fail to reach RTR; so: traffic from A to B
# generated here (iif lo) uses table 10 (dev vA), B to A table 11 (dev vB),
# the `local` rule moves from pref 0 to pref 100, and accept_local=1,
# rp_filter=0 let vB/vA accept packets with a local source address.
rxe_pair() {
	_rpage_need_clean rxe_pair
	local A=10.0.0.1 B=10.0.0.2 k
	RPAGE_TOPO=pair
	ip link add vA type veth peer name vB || rpage_die "cannot create veth pair vA/vB"
	ip addr add $A/24 dev vA || rpage_die "cannot address vA"
	ip addr add $B/24 dev vB || rpage_die "cannot address vB"
	for k in all default; do
		_rpage_sysctl net/ipv4/conf/$k/accept_local 1
		_rpage_sysctl net/ipv4/conf/$k/rp_filter 0
	done
	for k in vA vB; do
		_rpage_sysctl net/ipv4/conf/$k/accept_local 1
		_rpage_sysctl net/ipv4/conf/$k/rp_filter 0
	done
	ip link set vA up || rpage_die "cannot bring vA up"
	ip link set vB up || rpage_die "cannot bring vB up"
	ip route add 10.0.0.0/24 dev vA table 10 || rpage_die "cannot add route table 10"
	ip route add 10.0.0.0/24 dev vB table 11 || rpage_die "cannot add route table 11"
	ip rule add pref 10 iif lo from $A to $B lookup 10 || rpage_die "cannot add rule A->B"
	ip rule add pref 10 iif lo from $B to $A lookup 11 || rpage_die "cannot add rule B->A"
	ip rule add pref 100 lookup local || rpage_die "cannot add local rule at pref 100"
	ip rule del pref 0 lookup local || rpage_die "cannot delete local rule at pref 0"
	_rpage_rxe_add rxe0 vA
	_rpage_rxe_add rxe1 vB
	export RXE_SERVER_IP=$A RXE_CLIENT_IP=$B
	export RXE_SERVER_DEV=rxe0 RXE_CLIENT_DEV=rxe1
	echo "guest-lib: rxe_pair up: rxe0 on vA $A <-> rxe1 on vB $B (clients must bind $B)"
}

# rxe_loss PCT: netem loss PCT% on vA and vB (after rxe_pair)
rxe_loss() {
	[ $# = 1 ] || rpage_die "usage: rxe_loss PCT"
	case $1 in '' | *[!0-9.]*) rpage_die "rxe_loss: bad percentage '$1'" ;; esac
	[ "$RPAGE_TOPO" = pair ] || rpage_die "rxe_loss needs rxe_pair first (topology: '${RPAGE_TOPO:-none}')"
	tc qdisc add dev vA root netem loss "$1%" || rpage_die "tc netem loss $1% on vA failed"
	tc qdisc add dev vB root netem loss "$1%" || rpage_die "tc netem loss $1% on vB failed"
	RPAGE_TOPO=pair+loss
	echo "guest-lib: netem loss $1% on vA and vB"
}

# rxe_teardown: undo rxe_single / rxe_pair / rxe_loss
rxe_teardown() {
	local d n kv
	for d in $RPAGE_RXE_DEVS; do
		rdma link delete "$d" || rpage_die "rdma link delete $d failed (resources still in use?)"
		n=0
		while [ -e "/sys/class/infiniband/$d" ]; do
			[ $n -lt 100 ] || rpage_die "$d still present 10 s after rdma link delete"
			sleep 0.1
			n=$((n + 1))
		done
	done
	RPAGE_RXE_DEVS=
	case $RPAGE_TOPO in
	single)
		ip link del dummy0 || rpage_die "cannot delete dummy0"
		;;
	pair*)
		ip link del vA || rpage_die "cannot delete vA"
		ip rule del pref 10 from 10.0.0.1 to 10.0.0.2 2>/dev/null || true
		ip rule del pref 10 from 10.0.0.2 to 10.0.0.1 2>/dev/null || true
		if ! ip rule show pref 0 | grep -q local; then
			ip rule add pref 0 lookup local || rpage_die "cannot restore the local rule at pref 0"
		fi
		ip rule del pref 100 lookup local 2>/dev/null || true
		ip route flush table 10 2>/dev/null || true
		ip route flush table 11 2>/dev/null || true
		;;
	esac
	# restore sysctls in reverse order (vA/vB are gone with their links)
	for kv in $(echo $RPAGE_SAVED_SYSCTL | tr ' ' '\n' | tac); do
		[ ! -e "/proc/sys/${kv%=*}" ] || echo "${kv#*=}" >"/proc/sys/${kv%=*}" ||
			rpage_die "cannot restore ${kv%=*}"
	done
	RPAGE_SAVED_SYSCTL=
	RPAGE_TOPO=
	unset RXE_SERVER_IP RXE_CLIENT_IP RXE_SERVER_DEV RXE_CLIENT_DEV
	echo "guest-lib: topology torn down"
}

# rxe_wire_packets: print how many packets the topology's netdevs have
# transmitted so far (vA + vB for the pair; dummy0 for single, where it stays
# 0: rxe short-cuts traffic whose source and destination IP are equal, so
# nothing ever reaches the netdev).  Compare before/after a test to prove
# that its traffic really crossed the veth link.
rxe_wire_packets() {
	local d n total=0
	case $RPAGE_TOPO in
	single) set -- dummy0 ;;
	pair*) set -- vA vB ;;
	*) rpage_die "rxe_wire_packets: no topology is up" ;;
	esac
	for d in "$@"; do
		n=$(cat "/sys/class/net/$d/statistics/tx_packets") || rpage_die "cannot read $d tx_packets"
		total=$((total + n))
	done
	echo "$total"
}

# rxe_gid_index DEV IP [PORT]: print the index of the RoCE v2 GID
# ::ffff:IP in DEV's GID table (waits up to 5 s for it to appear).
rxe_gid_index() {
	[ $# -ge 2 ] || rpage_die "usage: rxe_gid_index DEV IP [PORT]"
	local dev=$1 addr=$2 port=${3:-1} want g v t n=0 base o
	case $addr in *[!0-9.]* | *..* | .* | *.) rpage_die "rxe_gid_index: bad IPv4 address '$addr'" ;; esac
	# shellcheck disable=SC2046
	set -- $(echo "$addr" | tr . ' ')
	[ $# = 4 ] || rpage_die "rxe_gid_index: bad IPv4 address '$addr'"
	for o in "$@"; do
		[ "$o" -le 255 ] || rpage_die "rxe_gid_index: bad IPv4 address '$addr'"
	done
	want=$(printf '0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x' "$@")
	base=/sys/class/infiniband/$dev/ports/$port
	[ -d "$base/gids" ] || rpage_die "rxe_gid_index: no $base/gids"
	while [ $n -lt 50 ]; do
		for g in "$base"/gids/*; do
			read -r v 2>/dev/null <"$g" || continue
			[ "$v" = "$want" ] || continue
			t=
			read -r t 2>/dev/null <"$base/gid_attrs/types/${g##*/}" || continue
			if [ "$t" = "RoCE v2" ]; then
				echo "${g##*/}"
				return 0
			fi
		done
		sleep 0.1
		n=$((n + 1))
	done
	rpage_die "rxe_gid_index: no RoCE v2 GID $want on $dev port $port"
}

# wait_listen PORT [SECS [PID]]: wait until an rdma_cm ID or a TCP socket
# listens on PORT; fail early if PID (the server) exits.
wait_listen() {
	[ $# -ge 1 ] || rpage_die "usage: wait_listen PORT [SECS [PID]]"
	local port=$1 secs=${2:-20} pid=${3:-} hex n=0
	hex=$(printf '%04X' "$port") || rpage_die "wait_listen: bad port '$port'"
	while [ $n -lt $((secs * 10)) ]; do
		if rdma resource show cm_id 2>/dev/null | grep -q "state LISTEN .*:$port\( \|$\)"; then
			return 0
		fi
		if cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
			awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }'; then
			return 0
		fi
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			echo "guest-lib: server (pid $pid) exited before listening on port $port" >&2
			return 1
		fi
		sleep 0.1
		n=$((n + 1))
	done
	echo "guest-lib: nothing listens on port $port after ${secs}s" >&2
	return 1
}

# run_server_client PORT SERVER_CMD... -- CLIENT_CMD...
# Start the server in the background, wait until it listens on PORT (rdma_cm
# or TCP), run the client, then give the server $RPAGE_SERVER_EXIT_TIMEOUT s
# (default 30) to exit by itself.  Returns the client's status if non-zero,
# else the server's (124 if it had to be killed).  Output of both goes to the
# console, server lines prefixed by nothing: perftest and rping say who they are.
run_server_client() {
	[ $# -ge 4 ] || rpage_die "usage: run_server_client PORT SERVER_CMD... -- CLIENT_CMD..."
	local port=$1 spid crc=0 src=0 n=0 a s=
	shift
	# split "$@" at "--": server words are shell-quoted into $s
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		a=$(printf '%s' "$1" | sed "s/'/'\\\\''/g")
		s="$s '$a'"
		shift
	done
	[ $# -ge 2 ] || rpage_die "run_server_client: no '--' or no client command"
	shift
	eval "$s &"
	spid=$!
	if ! wait_listen "$port" 20 "$spid"; then
		rpage_kill_tree "$spid" KILL
		wait "$spid" 2>/dev/null || true
		return 1
	fi
	"$@" || crc=$?
	while kill -0 "$spid" 2>/dev/null; do
		if [ $n -ge $((${RPAGE_SERVER_EXIT_TIMEOUT:-30} * 10)) ]; then
			echo "guest-lib: server did not exit ${RPAGE_SERVER_EXIT_TIMEOUT:-30}s after the client; killing it" >&2
			rpage_kill_tree "$spid" KILL
			break
		fi
		sleep 0.1
		n=$((n + 1))
	done
	wait "$spid" || src=$?
	[ $n -lt $((${RPAGE_SERVER_EXIT_TIMEOUT:-30} * 10)) ] || src=124
	[ "$crc" = 0 ] || { echo "guest-lib: client failed rc=$crc" >&2; return "$crc"; }
	[ "$src" = 0 ] || { echo "guest-lib: server failed rc=$src" >&2; return "$src"; }
	return 0
}
