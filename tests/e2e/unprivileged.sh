#!/bin/sh
# Both daemons as an unprivileged user (uid 65534, no groups, no
# capabilities) over TCP: a post-copy with every byte checked by a process
# of the same user. Then what such a user lacks, each refused or degraded
# with a message naming the fix: a Unix socket in a directory it cannot
# write or for a group it is not in, a region file it cannot read, a port
# below net.ipv4.ip_unprivileged_port_start, and a process
# of another user, which it can neither signal nor inspect (served, with a
# warning; kept blocked when its source is lost, never reading zeros); and
# a live migration's destination without fork events (CAP_SYS_PTRACE).
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root to start the daemons as another user"
command -v setpriv >/dev/null || skip "setpriv (util-linux) is not installed"
U=65534
AS_USER="setpriv --reuid=$U --regid=$U --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs"
chown "$U:$U" "$WORK"
# shellcheck disable=SC2086
if ! $AS_USER test -x "$BIN/rpage-server"; then
	# a build under a directory only root may enter: the programs
	# (statically linked to librpage) are copied where that user can go
	mkdir "$WORK/bin"
	cp "$BIN/rpage-server" "$BIN/rpage-client" "$BIN/rpage-bench" "$WORK/bin/"
	chmod 0755 "$WORK/bin"
	BIN=$WORK/bin
	$AS_USER test -x "$BIN/rpage-server" || fail "uid $U cannot run $BIN/rpage-server"
fi

# --- both daemons and the process unprivileged
# shellcheck disable=SC2086
$AS_USER "$BIN/rpage-bench" mkimage "$WORK/img" 64M 21 || fail "mkimage as uid $U"
RUN_AS=$AS_USER
start_server mem="$WORK/img"
start_client --connect 127.0.0.1:"$PORT" --once
for p in "$SRV_PID" "$CLI_PID"; do
	grep -q "^Uid:	$U	$U	$U	$U" /proc/"$p"/status || fail "process $p does not run as uid $U"
	grep -q "^CapEff:	0000000000000000" /proc/"$p"/status || fail "process $p has capabilities"
done
# shellcheck disable=SC2086
$AS_USER "$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 64M --ranges 2 \
	--seed 21 --threads 2 --balloon 2M >"$WORK/guest.log" 2>&1 || fail "guest failed"
grep -q " 0 mismatches" "$WORK/guest.log" || fail "guest saw mismatches"
# where this user may have no userfaultfd for the kernel's faults, the
# process says once what it gets instead and what would change that
if [ "$(cat /proc/sys/vm/unprivileged_userfaultfd)" = 0 ] &&
	! $AS_USER test -r /dev/userfaultfd -a -w /dev/userfaultfd; then
	grep -q "user-mode faults only.*EFAULT.*vm.unprivileged_userfaultfd=1.*/dev/userfaultfd.*CAP_SYS_PTRACE" \
		"$WORK/guest.log" || fail "no word of a userfaultfd for user-mode faults only"
fi
wait "$CLI_PID" || fail "client exited with $?"
json_check "$WORK/stats.json" '
s[0]["state"] == "complete" and s[0]["pages_resident"] == s[0]["pages_total"] == 16384
and s[0]["pages_by_fault"] + s[0]["pages_by_fill"] == 16384 and s[0]["faults"] > 0
and s[-1]["pages_zeroed"] == 512'
# neither daemon met anything it needed and lacked
! grep -i "permission\|not permitted\|CAP_" "$WORK/server.log" "$WORK/client.log" ||
	fail "a daemon running as uid $U said it lacked something"

# --- a process of another user (root here): the unprivileged daemon may
# neither kill it nor read its maps; it says so, and still serves it right
rm -f "$WORK/stats.json"
start_client --connect 127.0.0.1:"$PORT" --once
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 16M --seed 21 \
	>"$WORK/guest-root.log" 2>&1 || fail "root's guest failed"
grep -q " 0 mismatches" "$WORK/guest-root.log" || fail "root's guest saw mismatches"
wait "$CLI_PID" || fail "client exited with $?"
grep -q "cannot signal it.*kept blocked instead of killed.*CAP_KILL" "$WORK/client.log" ||
	fail "no warning that a process of another user cannot be killed"
grep -q "cannot read /proc/[0-9]*/maps.*CAP_SYS_PTRACE" "$WORK/client.log" ||
	fail "no warning that another user's maps cannot be read"

# --- a socket in a directory the user cannot write: refused, naming why
mkdir -m 0755 "$WORK/rootdir"
chown 0:0 "$WORK/rootdir"
# shellcheck disable=SC2086
if $AS_USER "$BIN/rpage-client" --connect 127.0.0.1:"$PORT" --once \
	--uffd-socket "$WORK/rootdir/u.sock" >"$WORK/nodir.log" 2>&1; then
	fail "rpage-client listened in a directory uid $U cannot write"
fi
grep -q "$WORK/rootdir is not writable by uid $U" "$WORK/nodir.log" ||
	fail "the refusal does not name the directory and the user"
grep -q "RuntimeDirectory=" "$WORK/nodir.log" || fail "the refusal names no fix"

# --- a group the user is not in, for the socket: refused, naming why
# shellcheck disable=SC2086
if $AS_USER "$BIN/rpage-client" --connect 127.0.0.1:"$PORT" --once \
	--uffd-socket "$WORK/g.sock" --socket-group 0 --socket-mode 0660 >"$WORK/group.log" 2>&1; then
	fail "rpage-client gave its socket to a group uid $U is not in"
fi
grep -q "cannot give $WORK/g.sock to group 0: Operation not permitted.*member of that group.*CAP_CHOWN" \
	"$WORK/group.log" || fail "the refused group names no fix"

# --- a region file the user cannot read: refused, naming the uid
install -m 0600 -o 0 -g 0 /dev/null "$WORK/secret.img"
# shellcheck disable=SC2086
if $AS_USER "$BIN/rpage-server" --listen 127.0.0.1:0 --region mem="$WORK/secret.img" \
	>"$WORK/noread.log" 2>&1; then
	fail "rpage-server served a file uid $U cannot read"
fi
grep -q "cannot open $WORK/secret.img: Permission denied: it must be readable by uid $U" \
	"$WORK/noread.log" || fail "the unreadable region names no fix"

# --- a port below net.ipv4.ip_unprivileged_port_start
start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start)
if [ "$start" -gt 1 ]; then
	low=$((start - 1))
	# shellcheck disable=SC2086
	if $AS_USER "$BIN/rpage-server" --listen 127.0.0.1:"$low" \
		--region mem="$WORK/img" >"$WORK/lowport.log" 2>&1; then
		fail "rpage-server listened on port $low as uid $U"
	fi
	grep -q "port $low.*CAP_NET_BIND_SERVICE.*net.ipv4.ip_unprivileged_port_start" \
		"$WORK/lowport.log" || fail "the refusal of port $low names no fix"
	cat "$WORK/lowport.log"
else
	echo "every port is open to any user here (net.ipv4.ip_unprivileged_port_start=$start): not checked"
fi

# --- a process of another user whose source is gone: it cannot be killed,
# so its userfaultfd is held and it stays blocked, never reading zeros
start_client --connect 127.0.0.1:"$PORT" --resume-timeout 1
stop_server
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 16M --seed 21 \
	>"$WORK/guest-lost.log" 2>&1 &
GUEST=$!
PIDS="$PIDS $GUEST"
wait_line "$WORK/client.log" "stays blocked: its userfaultfd is kept open until it exits" 20
sleep 1
kill -0 "$GUEST" 2>/dev/null || fail "the process went on after its source was lost: $(cat "$WORK/guest-lost.log")"
grep -q "cannot be killed (Operation not permitted).*CAP_KILL" "$WORK/client.log" ||
	fail "the refused kill does not name CAP_KILL"
kill "$GUEST"
wait "$GUEST" 2>/dev/null || true
kill -0 "$CLI_PID" || fail "the daemon died"

# --- a live migration as that user (both ends in one rpage-bench): the
# destination may not have fork events (CAP_SYS_PTRACE), goes on without
# them and says what a child forked early would read
# shellcheck disable=SC2086
$AS_USER "$BIN/rpage-server" --gen-psk "$WORK/live.psk" --identity live >/dev/null ||
	fail "rpage-server --gen-psk as uid $U"
# shellcheck disable=SC2086
(cd "$WORK" && timeout 120 $AS_USER "$BIN/rpage-bench" migrate --json \
	--psk-file "$WORK/live.psk" --size 32M --write-rate 5 --duration 2 \
	--mode postcopy) >"$WORK/live.json" 2>"$WORK/live.log" ||
	fail "live migration as uid $U failed"
json_check "$WORK/live.json" 's[0]["verified"] is True and s[0]["postcopy_pages"] > 0'
grep -q "no fork events (UFFD_FEATURE_EVENT_FORK needs CAP_SYS_PTRACE.*reads the pages still missing as zeros" \
	"$WORK/live.log" || fail "no word of the fork events the destination went without"

cat "$WORK/nodir.log" "$WORK/group.log" "$WORK/noread.log"
grep "uid\|blocked" "$WORK/client.log" || true
cat "$WORK/guest.log"
