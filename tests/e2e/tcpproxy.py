#!/usr/bin/env python3
"""tcpproxy.py PORTFILE TARGET_PORT [--record DIR] [--flip N] [--flip-conn K]
                                    [--chop] [--error-at K]

A TCP relay on 127.0.0.1 for the security tests: it listens on a free
port (written to PORTFILE once listening) and relays every connection to
127.0.0.1:TARGET_PORT, both ways, byte for byte.

--record DIR   keeps what each connection carried: DIR/conn-I.s2c (server
               to client) and DIR/conn-I.c2s, I counting from 0
--flip N       flips one bit (0x01) of byte N of the server-to-client
               stream, once: an on-path attacker changing a page in flight
--flip-conn K  ... of connection K only (default: the first one to carry
               N+1 bytes). The flip is reported on stderr.
--chop         passes the server-to-client stream on in pieces of 1, 7,
               13, 29, 300 and 1000 bytes in turn, each sent on its own
               after a pause of 0.3 ms: every message (and TLS record)
               arrives split, at every place in its headers
--error-at K   plain TCP only: the K-th 4 KiB page answer of the first
               connection that carries K of them is replaced by an ERROR
               frame (EIO, "tcpproxy: injected error"), sent in five pieces
               a second apart; then that connection is closed
"""
import struct
import time
import argparse
import os
import socket
import sys
import threading

a = argparse.ArgumentParser()
a.add_argument("portfile")
a.add_argument("target", type=int)
a.add_argument("--record")
a.add_argument("--flip", type=int, default=-1)
a.add_argument("--flip-conn", type=int, default=-1)
a.add_argument("--chop", action="store_true")
a.add_argument("--error-at", type=int, default=0)
args = a.parse_args()

lock = threading.Lock()
flipped = [False]


ERR_MSG = b"tcpproxy: injected error"
injected = [False]


def error_frames(dst, b, st):
    """--error-at: passes whole frames on, and the K-th page answer as
    an ERROR frame in pieces. True once the connection is to end."""
    st["buf"] += b
    buf = st["buf"]
    while len(buf) >= 16:
        typ, _, ln, tag = struct.unpack_from("<HHIQ", buf, 0)
        if len(buf) < 16 + ln:
            break
        frame, buf = buf[:16 + ln], buf[16 + ln:]
        if typ == 6 and ln == 16 + 4096:
            st["pages"] += 1
        if st["pages"] == args.error_at and typ == 6 and ln == 16 + 4096:
            with lock:
                mine = not injected[0]
                injected[0] = True
            if mine:
                # said first: the client may be done before the last pause ends
                print("tcpproxy: answered page request %d with an ERROR frame in pieces"
                      % args.error_at, file=sys.stderr, flush=True)
                pay = struct.pack("<iHH", 5, len(ERR_MSG), 0) + ERR_MSG
                e = struct.pack("<HHIQ", 7, 0, len(pay), tag) + pay
                for a, z in ((0, 5), (5, 16), (16, 19), (19, 30), (30, len(e))):
                    if a:
                        time.sleep(1)
                    dst.sendall(e[a:z])
                st["buf"] = b""
                return True
        dst.sendall(frame)
    st["buf"] = buf
    return False


def pump(src, dst, idx, s2c, rec):
    seen = 0
    st = {"buf": b"", "pages": 0}
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            if s2c and args.error_at > 0:
                if error_frames(dst, b, st):
                    break
                continue
            if s2c and args.flip >= 0 and seen <= args.flip < seen + len(b) \
                    and (args.flip_conn < 0 or args.flip_conn == idx):
                with lock:
                    if not flipped[0]:
                        flipped[0] = True
                        b = bytearray(b)
                        b[args.flip - seen] ^= 1
                        b = bytes(b)
                        print("tcpproxy: flipped bit 0 of byte %d of connection %d"
                              % (args.flip, idx), file=sys.stderr, flush=True)
            seen += len(b)
            if rec:
                rec.write(b)
                rec.flush()
            if s2c and args.chop:
                chop(dst, b)
            else:
                dst.sendall(b)
    except OSError:
        pass
    for s in (dst, src):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


PIECES = (1, 7, 13, 29, 300, 1000)


def chop(dst, b):
    i = 0
    while i < len(b):
        n = PIECES[chop.k % len(PIECES)]
        chop.k += 1
        dst.sendall(b[i:i + n])
        i += n
        time.sleep(0.0003)


chop.k = 0


def serve(c, idx):
    try:
        s = socket.create_connection(("127.0.0.1", args.target))
    except OSError:
        c.close()
        return
    if args.chop:  # each piece leaves at once, on its own
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    r1 = r2 = None
    if args.record:
        r1 = open(os.path.join(args.record, "conn-%d.s2c" % idx), "wb")
        r2 = open(os.path.join(args.record, "conn-%d.c2s" % idx), "wb")
    t = threading.Thread(target=pump, args=(s, c, idx, True, r1), daemon=True)
    t.start()
    pump(c, s, idx, False, r2)
    t.join()
    c.close()
    s.close()


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(64)
with open(args.portfile + ".tmp", "w") as f:
    f.write("%d\n" % ls.getsockname()[1])
os.rename(args.portfile + ".tmp", args.portfile)
n = 0
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c, n), daemon=True).start()
    n += 1
