#!/bin/sh
# rpage-server runs on another "host" (a network namespace behind a veth
# pair) and the link goes down in the middle of a post-copy: once for 3 s
# (TCP rides it out), then for 20 s, longer than the connections' keepalive
# and TCP_USER_TIMEOUT, so they break and the client must reconnect once
# the link is back. The process waits meanwhile and reads every byte right.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
command -v ip >/dev/null || skip "iproute2 (ip) is not installed"
NS=rpage-host-$$
net=10.213.$(($$ % 250)).
ip netns add "$NS" 2>/dev/null || skip "cannot create a network namespace"
AT_EXIT='ip netns del "$NS" 2>/dev/null; ip link del "rpv$$" 2>/dev/null'
ip link add "rpv$$" type veth peer name "rpw$$" netns "$NS" || fail "cannot make a veth pair"
ip addr add "${net}1/24" dev "rpv$$"
ip link set "rpv$$" up
ip -n "$NS" addr add "${net}2/24" dev "rpw$$"
ip -n "$NS" link set "rpw$$" up
ip -n "$NS" link set lo up
"$BIN/rpage-bench" mkimage "$WORK/img" 256M 8
gen_psk "$WORK/k.psk" node1
ip netns exec "$NS" "$BIN/rpage-server" --listen "${net}2:0" --region mem="$WORK/img" \
	--psk-file "$WORK/k.psk" >"$WORK/server.log" 2>&1 &
SRV_PID=$!
PIDS="$PIDS $SRV_PID"
wait_line "$WORK/server.log" "rpage-server: ready"
PORT=$(sed -n 's/.*ready on [0-9.]*:\([0-9]*\) .*/\1/p' "$WORK/server.log")
start_client --connect "${net}2:$PORT" --psk-file "$WORK/k.psk" --no-fill
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 256M --seed 8 >"$WORK/guest.log" 2>&1 &
g=$!
PIDS="$PIDS $g"
wait_line "$WORK/client.log" "serving 1 range"
sleep 0.5
for down in 3 20; do
	grep -q "is complete" "$WORK/client.log" && fail "the memory was complete before the link went down"
	ip link set "rpv$$" down
	echo "link down for $down s"
	sleep "$down"
	kill -0 "$g" || fail "the process ended while the link was down: $(cat "$WORK/guest.log")"
	ip link set "rpv$$" up
	sleep 1
done
wait_line "$WORK/client.log" "reconnected after" 60
wait_line "$WORK/client.log" "is complete" 120
wait "$g" || fail "the process failed: $(cat "$WORK/guest.log")"
grep -q " 0 mismatches" "$WORK/guest.log" || fail "wrong bytes: $(cat "$WORK/guest.log")"
wait_line "$WORK/client.log" "has gone"
json_check "$WORK/stats.json" 's[-1]["state"] == "complete" and s[-1]["reconnects"] >= 1 and s[-1]["faults_waited"] >= 1'
grep -E "failed|reconnect" "$WORK/client.log" | head -n 5
cat "$WORK/guest.log"
