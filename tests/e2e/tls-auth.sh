#!/bin/sh
# Mutual authentication (PSK and X.509) and secure defaults. The right
# credentials move every byte over TLS. Wrong or missing ones are refused
# before the server sends any region table, key or page: a relay records
# every byte the server sent, and it holds only TLS alerts (or, to a plain
# client, one ERROR frame). The client stops at start with a clear error
# and never tries again. Without credentials nothing serves or fetches
# beyond loopback unless --insecure. An identity reads only what --allow
# gives it, and a certificate must carry the server's name. The key
# exchange is X25519.
. "$(dirname "$0")/lib.sh"
"$BIN/rpage-bench" mkimage "$WORK/img" 16M 11
"$BIN/rpage-bench" mkimage "$WORK/img2" 8M 12
gen_psk "$WORK/k.psk" node1
gen_psk "$WORK/wrong.psk" node1   # the same identity with another key
gen_psk "$WORK/other.psk" intruder
SRV_ARGS="--psk-file $WORK/k.psk" start_server mem="$WORK/img" other="$WORK/img2"
grep -q "TLS 1.3, PSK identity 'node1'" "$WORK/server.log" || fail "the server does not say it uses TLS"

# 1. the right key: every byte arrives, over TLS
start_client --connect 127.0.0.1:"$PORT" --region mem --once --psk-file "$WORK/k.psk"
grep -q "connection to the source: TLS1.3 PSK 'node1'" "$WORK/client.log" || fail "the client does not report TLS"
# an elliptic-curve exchange: a finite-field group (FFDHE2048, which GnuTLS
# prefers for a PSK when allowed) costs ~20 ms of CPU per handshake
grep -q "TLS1.3 PSK 'node1' AES-[0-9]*-GCM X25519," "$WORK/client.log" ||
	fail "the key exchange is not X25519: $(grep -m1 'TLS1.3' "$WORK/client.log")"
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 16M --seed 11 >"$WORK/guest.log" 2>&1 || fail "guest failed"
grep -q " 0 mismatches" "$WORK/guest.log" || fail "guest saw mismatches"
wait "$CLI_PID" || fail "client exited with $?"

# 2. wrong key, unknown identity, no key, through a relay that records
mkdir "$WORK/rec"
start_proxy "$PORT" --record "$WORK/rec"
refused() { # NAME EXPECTED-MESSAGE CLIENT-ARGS...
	name=$1 pat=$2
	shift 2
	set +e
	timeout 30 "$BIN/rpage-client" --connect 127.0.0.1:"$PROXY_PORT" \
		--uffd-socket "$WORK/$name.sock" --no-progress "$@" >"$WORK/$name.log" 2>&1
	rc=$?
	set -e
	[ "$rc" = 1 ] || fail "$name: the client exited $rc, expected 1 (a fatal error at start)"
	grep -q "$pat" "$WORK/$name.log" || { cat "$WORK/$name.log"; fail "$name: no clear message ('$pat')"; }
	[ ! -e "$WORK/$name.sock" ] || fail "$name: the client went on to listen"
}
refused wrong "TLS alert: Decrypt error" --psk-file "$WORK/wrong.psk"
refused intruder "TLS alert: The SRP/PSK username is missing or not known" --psk-file "$WORK/other.psk"
refused nokey "this server requires TLS" 
sleep 0.5
python3 - "$WORK/rec" <<'PY' || fail "the server sent more than refusals to a peer without the key"
import glob, os, sys
d = sys.argv[1]
files = sorted(glob.glob(os.path.join(d, "conn-*.s2c")), key=lambda f: int(f.split("-")[-1].split(".")[0]))
assert len(files) == 3, "expected 3 connections (one per refused client), saw %d" % len(files)
for f in files[:2]:
    b = open(f, "rb").read()
    i, types = 0, []
    while i + 5 <= len(b):
        types.append(b[i])
        i += 5 + (b[i + 3] << 8 | b[i + 4])
    assert i == len(b), "%s: not a whole number of TLS records" % f
    # 21 alert, 22 handshake in clear; 23 would be encrypted data
    assert types and set(types) <= {21, 22}, "%s: record types %s" % (f, types)
    print("%s: %d bytes, TLS records %s: refusals only" % (os.path.basename(f), len(b), types))
b = open(files[2], "rb").read()
typ, ln = b[0] | b[1] << 8, b[4] | b[5] << 8 | b[6] << 16 | b[7] << 24
assert typ == 7 and len(b) == 16 + ln, "plain client got %d bytes, first frame type %d" % (len(b), typ)
assert b"mem" not in b and b"other" not in b
print("%s: %d bytes: one ERROR frame" % (os.path.basename(files[2]), len(b)))
PY
# each refused client tried once: one failure each in the server's log
[ "$(grep -c 'TLS handshake failed' "$WORK/server.log")" = 2 ] || fail "a refused client tried again (or was not logged)"
grep -q "identity 'node1' did not prove it has the key" "$WORK/server.log" || fail "wrong key not logged"
grep -q "unknown PSK identity 'intruder'" "$WORK/server.log" || fail "unknown identity not logged"
# a key file that is missing or malformed stops the client before it
# connects anywhere
printf 'node1:abc\n' >"$WORK/bad.psk"
chmod 600 "$WORK/bad.psk"
refused nofile "cannot open the key file" --psk-file "$WORK/missing.psk"
refused badfile "line 1: the key must be" --psk-file "$WORK/bad.psk"
[ "$(ls "$WORK/rec" | grep -c s2c)" = 3 ] || fail "a client with an unusable key file connected"

# 3. secure by default beyond loopback
set +e
timeout 10 "$BIN/rpage-server" --listen 0.0.0.0:0 --region mem="$WORK/img" --no-rdma >"$WORK/open.log" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] && grep -q "refusing to serve memory on 0.0.0.0" "$WORK/open.log" ||
	fail "a server without credentials started on 0.0.0.0 (rc $rc)"
addr=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ sub("/.*", "", $4); print $4; exit }')
if [ -n "$addr" ]; then
	"$BIN/rpage-server" --listen "$addr:0" --region mem="$WORK/img" --no-rdma --insecure >"$WORK/insecure.log" 2>&1 &
	ipid=$!
	PIDS="$PIDS $ipid"
	wait_line "$WORK/insecure.log" "rpage-server: ready"
	grep -q "(--insecure)" "$WORK/insecure.log" || fail "--insecure is not said"
	iport=$(sed -n 's/.*ready on [0-9.]*:\([0-9]*\) .*/\1/p' "$WORK/insecure.log")
	refused beyond "refusing to fetch memory from $addr:$iport without authentication" --connect "$addr:$iport"
	kill "$ipid"
else
	echo "note: no global IPv4 address here: the client side of the default is not checked"
fi

# 4. X.509 with authorization: client1 may read 'mem' only; client2 nothing
P=$WORK/pki
gen_pki "$P"
stop_server
SRV_ARGS="--tls-cert $P/server.crt --tls-key $P/server.key --tls-ca $P/ca.crt --allow client1:mem" \
	start_server mem="$WORK/img" other="$WORK/img2"
X1="--tls-cert $P/client1.crt --tls-key $P/client1.key --tls-ca $P/ca.crt"
# shellcheck disable=SC2086
start_client --connect 127.0.0.1:"$PORT" --once $X1
grep -q "region 'mem'" "$WORK/client.log" || fail "client1 does not see 'mem'"
grep -q "TLS1.3 X.509 'server' AES-[0-9]*-GCM X25519," "$WORK/client.log" ||
	fail "the server's certificate name or the X25519 exchange is not reported: $(grep -m1 'TLS1.3' "$WORK/client.log")"
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 16M --seed 11 >"$WORK/guest2.log" 2>&1 || fail "guest (X.509) failed"
grep -q " 0 mismatches" "$WORK/guest2.log" || fail "guest (X.509) saw mismatches"
wait "$CLI_PID" || fail "client1 exited with $?"
PROXY_PORT=$PORT
# shellcheck disable=SC2086
refused notallowed "the source has no region 'other'" --region other $X1
refused client2 "identity 'client2' may read no region" \
	--tls-cert "$P/client2.crt" --tls-key "$P/client2.key" --tls-ca "$P/ca.crt"
# shellcheck disable=SC2086
refused wrongname "The name in the certificate does not match" --tls-name db.example $X1
refused keymix "do not match" --tls-cert "$P/client1.crt" --tls-key "$P/client2.key" --tls-ca "$P/ca.crt"
echo "authentication, refusals and authorization behave"
