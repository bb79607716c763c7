#!/bin/sh
# What an unauthenticated peer can cost the server, limit by limit: the cap
# per peer address and in all (a refused peer is closed at once, others
# are still served), one deadline for the whole handshake (a peer that
# sends one byte at a time cannot stretch it, plain or TLS), the idle
# limit after HELLO, and peer text reaching the log without control bytes.
. "$(dirname "$0")/lib.sh"
"$BIN/rpage-bench" mkimage "$WORK/img" 1M 3
gen_psk "$WORK/k.psk"
SRV_ARGS="--psk-file $WORK/k.psk --handshake-timeout 1500" start_server mem="$WORK/img"
mv "$WORK/server.log" "$WORK/tls-server.log"
TP=$PORT
SRV_ARGS="--max-conns 5 --max-conns-per-peer 3 --handshake-timeout 1500 --idle-timeout 1000" \
	start_server mem="$WORK/img"
P=$PORT
cat >"$WORK/peer.py" <<'PY'
import socket, struct, sys, time

PORT, TPORT = int(sys.argv[1]), int(sys.argv[2])
HELLO = struct.pack("<HHIQ", 1, 0, 32, 1) + struct.pack("<IHHBBHIQQ", 0x31475052, 2, 2, 0, 0, 0, 0, 0, 0)  # protocol version 2

def conn(src="127.0.0.1", port=PORT):
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s

def closed_within(s, secs):
    """True when the server closes s (EOF, no data) within secs."""
    s.settimeout(secs)
    try:
        return s.recv(100) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True

def hello_ok(s):
    s.settimeout(5)
    s.sendall(HELLO)
    h = b""
    while len(h) < 48:
        b = s.recv(48 - len(h))
        if not b:
            return False
        h += b
    return struct.unpack("<H", h[:2])[0] == 2

def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        sys.exit(1)

# per peer: 3 open from 127.0.0.1, the 4th is closed at once
held = [conn() for _ in range(3)]
time.sleep(0.2)
check(closed_within(conn(), 1.0), "a 4th connection from one address is closed at once")
s = conn("127.0.0.2")
check(hello_ok(s), "another address is still served (HELLO_ACK)")
# in all: 3 + 1 (+ 1 more) = 5 open, the 6th is closed at once
held.append(s)
held.append(conn("127.0.0.3"))
time.sleep(0.2)
check(closed_within(conn("127.0.0.4"), 1.0), "a 6th connection in all is closed at once")
for h in held:
    h.close()
time.sleep(0.5)

# one deadline for the whole handshake, not one per read: one byte of
# HELLO every 300 ms would take 14 s
for port, what, first in ((PORT, "plain", HELLO), (TPORT, "TLS", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64))):
    s = conn(port=port)
    t0 = time.monotonic()
    try:
        for b in first:
            s.send(bytes([b]))
            time.sleep(0.3)
            if time.monotonic() - t0 > 6:
                break
    except OSError:
        pass
    closed_within(s, 6)
    dt = time.monotonic() - t0
    check(1.2 <= dt <= 3.5, "%s: a peer sending a byte every 300 ms is closed after %.1f s (limit 1.5 s)" % (what, dt))

# idle after HELLO: closed after 1 s without a request
s = conn()
check(hello_ok(s), "HELLO answered")
t0 = time.monotonic()
closed_within(s, 5)
dt = time.monotonic() - t0
check(0.8 <= dt <= 2.5, "an idle connection is closed after %.1f s (limit 1 s)" % dt)

# peer text: an ERROR with terminal controls, DEL and C1 (raw and UTF-8)
s = conn()
check(hello_ok(s), "HELLO answered")
msg = b"evil\x1b[31m\x7f\x9b\xc2\x9bend"
s.sendall(struct.pack("<HHIQ", 7, 0, 8 + len(msg), 2) + struct.pack("<iHH", 5, len(msg), 0) + msg)
closed_within(s, 2)
PY
python3 "$WORK/peer.py" "$P" "$TP" || fail "a limit did not hold"
sleep 0.3
grep -q "connections from this address are open already" "$WORK/server.log" || fail "per-peer refusal not logged"
grep -q "5 connections are open already" "$WORK/server.log" || fail "total refusal not logged"
grep -q "no HELLO within 1500 ms" "$WORK/server.log" || fail "plain handshake deadline not logged"
grep -q "no complete handshake before the deadline" "$WORK/tls-server.log" || fail "TLS handshake deadline not logged"
grep -q "closing the idle connection" "$WORK/server.log" || fail "idle close not logged"
grep -q "sent error 5: evil" "$WORK/server.log" || fail "the peer's error was not logged"
python3 - "$WORK/server.log" <<'PY' || fail "control bytes from a peer reached the log"
import sys
b = open(sys.argv[1], "rb").read()
bad = [c for c in b if (c < 0x20 and c not in (10, 9)) or c >= 0x7f]
print("server log: %d bytes, %d outside printable ASCII" % (len(b), len(bad)))
sys.exit(1 if bad else 0)
PY
kill -0 "$SRV_PID" || fail "the server died"
