#!/bin/sh
# rpage-client's Unix socket, the daemon's local attack surface: created
# mode 0600 (--socket-mode and --socket-group widen it on purpose), each
# peer's credentials logged and, with --allow-uid/--allow-gid, checked; a
# peer that does not hand over its userfaultfd in time is closed by the
# main loop, so idle peers cannot hold every slot; and the main loop keeps
# running while a process's connections to a stalled server are being
# set up (that work runs off it).
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root (another uid for the peer check)"
"$BIN/rpage-bench" mkimage "$WORK/img" 8M 31
start_server mem="$WORK/img"

# mode 0600 by default
start_client --connect 127.0.0.1:"$PORT" --handshake-timeout 1000
[ "$(stat -c %a "$SOCK")" = 600 ] || fail "the socket has mode $(stat -c %a "$SOCK"), not 600"
kill "$CLI_PID"
wait "$CLI_PID" 2>/dev/null || true
grp=$(getent group daemon >/dev/null && echo daemon || echo 1)
start_client --connect 127.0.0.1:"$PORT" --socket-mode 0660 --socket-group "$grp" \
	--handshake-timeout 1000
[ "$(stat -c %a:%g "$SOCK")" = "660:$(getent group "$grp" | cut -d: -f3 || echo 1)" ] ||
	fail "--socket-mode/--socket-group: $(stat -c %a:%g "$SOCK")"
kill "$CLI_PID"
wait "$CLI_PID" 2>/dev/null || true

# credentials logged and restricted (the directory lets others reach the
# socket: the socket's own mode is what is tested)
chmod 711 "$WORK"
start_client --connect 127.0.0.1:"$PORT" --socket-mode 0666 --allow-uid 0 \
	--handshake-timeout 1000
cat >"$WORK/peer.py" <<'PY'
import os, socket, sys, time

path, what = sys.argv[1], sys.argv[2]

def closed_after(s, secs):
    s.settimeout(secs)
    t0 = time.monotonic()
    try:
        s.recv(1)
    except (socket.timeout, ConnectionResetError):
        pass
    return time.monotonic() - t0

if what == "nobody":
    os.setgid(65534)
    os.setuid(65534)
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    dt = closed_after(s, 3)
    print("uid 65534: closed after %.2f s" % dt)
    sys.exit(0 if dt < 0.5 else 1)
if what == "idle":
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    dt = closed_after(s, 5)
    print("an idle peer was closed after %.2f s" % dt)
    sys.exit(0 if 0.7 <= dt <= 2.5 else 1)
if what == "crowd":
    # far more idle peers than handshake slots: some are refused at once,
    # the rest closed at the deadline; afterwards nobody is left
    held = []
    for _ in range(int(sys.argv[3])):
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        held.append(s)
    t0 = time.monotonic()
    for s in held:
        closed_after(s, 5)
    dt = time.monotonic() - t0
    print("%d idle peers all closed within %.2f s" % (len(held), dt))
    sys.exit(0 if dt <= 3 else 1)
PY
python3 "$WORK/peer.py" "$SOCK" nobody || fail "a peer of another uid was not refused"
grep -q "refusing process [0-9]* (uid 65534, gid 65534): not in --allow-uid" "$WORK/client.log" ||
	fail "the refusal does not name the peer's credentials"
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 8M --seed 31 >"$WORK/g1.log" 2>&1 || fail "root's guest failed"
grep -q "connected (uid 0, gid 0)" "$WORK/client.log" || fail "the peer's credentials are not logged"

# handshake deadline, and idle peers do not hold the slots
python3 "$WORK/peer.py" "$SOCK" idle || fail "an idle peer was not closed at the deadline"
grep -q "no userfaultfd within 1000 ms" "$WORK/client.log" || fail "the deadline is not logged"
python3 "$WORK/peer.py" "$SOCK" crowd 300 || fail "idle peers stayed"
grep -q "too many handshakes in progress" "$WORK/client.log" || fail "the handshake slots are not capped"
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 8M --seed 31 >"$WORK/g2.log" 2>&1 ||
	fail "a real process was not served after 300 idle peers"

# the main loop keeps going while connections to a stalled server are set up
kill -STOP "$SRV_PID"
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 8M --seed 31 >"$WORK/g3.log" 2>&1 &
gpid=$!
sleep 0.5
python3 "$WORK/peer.py" "$SOCK" idle || { kill -CONT "$SRV_PID"; fail "the main loop stalled while a process was being attached"; }
kill -CONT "$SRV_PID"
wait "$gpid" || fail "the process attached during the stall failed"
grep -q " 0 mismatches" "$WORK/g3.log" || fail "mismatches after the stall"
kill -0 "$CLI_PID" || fail "the client died"
