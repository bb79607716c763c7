#!/bin/sh
# Every class of bad input to the server and to the client's uffd socket
# ends only the offending connection, with a logged reason; good peers keep
# being served. Plus bad command lines.
. "$(dirname "$0")/lib.sh"
"$BIN/rpage-bench" mkimage "$WORK/img" 8M 4
start_server mem="$WORK/img"
# a peer that connects and says nothing is closed after the hello timeout
timeout 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; cat <&3 >/dev/null" &
silent=$!
"$TBIN/rpage-badpeer" 127.0.0.1 "$PORT" $((8 << 20)) || fail "server bad-input cases"
kill -0 "$SRV_PID" || fail "server died"
[ "$(grep -c 'closing the connection' "$WORK/server.log")" -ge 12 ] || fail "server did not log its reasons"
start_client --connect 127.0.0.1:"$PORT"
"$TBIN/rpage-badpeer" --uffd "$SOCK" || fail "client bad-handshake cases"
kill -0 "$CLI_PID" || fail "client died"
[ "$(grep -c 'handshake refused\|cannot serve its memory' "$WORK/client.log")" -ge 7 ] || fail "client did not log its reasons"
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 8M --seed 4 >"$WORK/guest.log" 2>&1 || fail "good guest after bad ones"
# command lines
expect_usage() { # EXPECTED-EXIT PATTERN CMD...
	want=$1; pat=$2; shift 2
	set +e; "$@" >"$WORK/cli.out" 2>&1; rc=$?; set -e
	[ "$rc" = "$want" ] || fail "'$*' exited $rc, expected $want"
	grep -q "$pat" "$WORK/cli.out" || fail "'$*' did not say '$pat'"
}
expect_usage 2 "is required" "$BIN/rpage-server" --region a="$WORK/img"
expect_usage 2 "NAME=PATH" "$BIN/rpage-server" --listen 127.0.0.1:0 --region nothing
expect_usage 1 "cannot open" "$BIN/rpage-server" --listen 127.0.0.1:0 --region a=/nonexistent
expect_usage 1 "invalid" "$BIN/rpage-server" --listen 127.0.0.1:0 --region 'a/b'="$WORK/img"
expect_usage 2 "HOST:PORT" "$BIN/rpage-server" --listen nonsense --region a="$WORK/img"
expect_usage 2 "exactly one" "$BIN/rpage-client" --uffd-socket "$WORK/x.sock"
expect_usage 2 "unknown transport" "$BIN/rpage-client" --connect 127.0.0.1:1 --uffd-socket "$WORK/x.sock" --transport pigeon
expect_usage 1 "cannot connect" "$BIN/rpage-client" --connect 127.0.0.1:1 --uffd-socket "$WORK/x.sock"
expect_usage 1 "no region" "$BIN/rpage-client" --connect 127.0.0.1:"$PORT" --region nope --uffd-socket "$WORK/x.sock"
expect_usage 2 "bad value" "$BIN/rpage-client" --local "$WORK/img" --uffd-socket "$WORK/x.sock" --fill-depth 0
wait "$silent" || fail "a silent peer was not disconnected after the hello timeout"
grep -q "no HELLO within" "$WORK/server.log" || fail "the hello timeout was not logged"
echo "all bad inputs rejected cleanly"
