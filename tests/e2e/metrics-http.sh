#!/bin/sh
# Untrusted bytes on the metrics port: malformed, oversized, binary,
# unsupported and stalled requests each get their answer (or, stalled,
# the deadline) and end only their own connection; the endpoint serves
# the next scrape, the server keeps serving pages, and the endpoint's own
# counters tell what it answered.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/metrics-lib.inc"
need_tool curl curl
need_tool promtool prometheus
"$BIN/rpage-bench" mkimage "$WORK/img" 16M 4
SRV_ARGS="--metrics 127.0.0.1:0 --handshake-timeout 1000" start_server mem="$WORK/img"
URL=$(metrics_url "$WORK/server.log" rpage-server)
MPORT=${URL#http://127.0.0.1:}
MPORT=${MPORT%/metrics}

python3 - "$MPORT" <<'PY' || fail "a request was not answered as it should be"
import socket, sys, threading, time
port = int(sys.argv[1])
def exchange(data, expect, chunks=1):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    step = max(1, len(data) // chunks)
    try:
        for i in range(0, len(data), step):
            s.sendall(data[i:i + step])
    except (BrokenPipeError, ConnectionResetError):
        pass # the answer came before all of it was sent
    got = b""
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        got += b
    s.close()
    status = got.split(b"\r\n", 1)[0].decode("latin-1")
    ok = status.startswith("HTTP/1.1 " + expect + " ")
    print("%-44r -> %s%s" % (data[:40], status, "" if ok else "  (wanted %s)" % expect))
    return ok, got
ok = True
host = b"Host: x\r\n"
cases = [
    (b"GET /metrics HTTP/1.1\r\n" + host + b"X-Pad: " + b"a" * 10000 + b"\r\n\r\n", "431", 7),
    (b"GARBAGE\r\n\r\n", "400", 1),
    (b"\x00\x01\x02\xff\xfe GET / \r\n\r\n", "400", 1),
    (b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n" + host + b"\r\nhello", "400", 1),
    (b"GET /metrics HTTP/1.1\r\n\r\n", "400", 1),
    (b"GET /other HTTP/1.1\r\n" + host + b"\r\n", "404", 1),
    (b"POST /metrics HTTP/1.1\r\n" + host + b"\r\n", "405", 1),
    (b"GET /metrics HTTP/2.0\r\n" + host + b"\r\n", "505", 1),
    # one byte at a time still makes one request
    (b"GET /metrics HTTP/1.1\r\n" + host + b"\r\n", "200", 40),
]
for data, expect, chunks in cases:
    good, got = exchange(data, expect, chunks)
    ok &= good
    if expect == "405" and b"\r\nAllow: GET, HEAD\r\n" not in got:
        print("405 without Allow"); ok = False
    if expect == "200" and b"rpage_server_region_size_bytes" not in got:
        print("200 without the metrics"); ok = False
# a client that stalls holds its own connection until the deadline, and
# the scrape queued behind it is answered once it is closed
stalled = socket.create_connection(("127.0.0.1", port), timeout=15)
stalled.sendall(b"GET /metrics HTTP/1.1\r\n")
time.sleep(0.2)
t0 = time.time()
good, got = exchange(b"GET /metrics HTTP/1.1\r\n" + host + b"\r\n", "200")
waited = time.time() - t0
left = stalled.recv(100)
stalled.close()
print("behind a stalled client: answered after %.1f s; the stalled one got %r" % (waited, left))
ok &= good and left == b"" and 3 < waited < 10
sys.exit(0 if ok else 1)
PY

# the server's own refusals are counted by reason: bytes that are not
# rpage, and a peer that says nothing until the handshake deadline
python3 - "$PORT" <<'PY' || fail "the server did not close the bad peers"
import socket, sys
port = int(sys.argv[1])
for data in (b"NOT-RPAGE-" * 8, b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(data)
    while s.recv(4096):
        pass # until the server closes it
    s.close()
PY

# the endpoint still serves, and counted what it answered
scrape "$URL" after
promcheck "$WORK/after"
mcheck "$WORK/after" '
m("rpage_server_metrics_http_requests_total", code="400") == 3 + 1 and
m("rpage_server_metrics_http_requests_total", code="404") == 1 and
m("rpage_server_metrics_http_requests_total", code="405") == 1 and
m("rpage_server_metrics_http_requests_total", code="431") == 1 and
m("rpage_server_metrics_http_requests_total", code="505") == 1 and
m("rpage_server_metrics_http_requests_total", code="none") == 1 and
m("rpage_server_metrics_http_requests_total", code="200") == 3 and
m("rpage_server_connections_refused_total", reason="bad_input") == 1 and
m("rpage_server_connections_refused_total", reason="handshake_timeout") == 1 and
sum(v for l, v in M("rpage_server_connections_refused_total")) == 2'
# logged, at most one warning a second
grep -q "answered 431 and closed" "$WORK/server.log" || fail "the oversized request was not logged"
grep -q "no whole request and answer within the deadline" "$WORK/server.log" ||
	fail "the stalled client was not logged"

# the server serves memory all along
start_client --connect 127.0.0.1:"$PORT" --once
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 16M --seed 4 \
	>"$WORK/guest.log" 2>&1 || fail "guest failed"
grep -q " 0 mismatches" "$WORK/guest.log" || fail "guest saw mismatches"
wait "$CLI_PID" || fail "client exited with $?"
