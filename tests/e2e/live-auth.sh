#!/bin/sh
# Live migration between authenticated ends (rpage-livepeer, through the
# library on loopback): uninvited peers at the destination — an idle
# connection, a plain one that sends pages, one with another identity's
# key — are closed and logged without holding the real source up or
# writing a byte; no page server runs when nothing is left for post-copy;
# in post-copy the page server, started at the switchover, refuses every
# identity but the destination's, and every byte arrives right. Without
# credentials neither end talks beyond loopback: the destination refuses to
# wait on 0.0.0.0, the source to send memory to this host's address.
. "$(dirname "$0")/lib.sh"
[ -e /proc/sys/vm/unprivileged_userfaultfd ] || skip "no userfaultfd in this kernel"
# the destination knows "live"; the source knows "live" (its own) and
# "other", so "other" authenticates to the source but must not be served
gen_psk "$WORK/live.psk" live
gen_psk "$WORK/other.psk" other
cat "$WORK/live.psk" "$WORK/other.psk" >"$WORK/keys.psk"
chmod 600 "$WORK/keys.psk"
addr=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ sub("/.*", "", $4); print $4; exit }')
# no address beyond loopback here: no second argument (livepeer says so)
# shellcheck disable=SC2086
timeout 120 "$TBIN/rpage-livepeer" "$WORK" $addr >"$WORK/livepeer.log" 2>&1 || { cat "$WORK/livepeer.log"; fail "rpage-livepeer"; }
cat "$WORK/livepeer.log"
grep -q "plain rpage HELLO, but this server requires TLS\|not a TLS handshake" "$WORK/livepeer.log" ||
	fail "the plain peer's refusal is not logged"
grep -q "unknown PSK identity 'other'\|TLS handshake failed" "$WORK/livepeer.log" ||
	fail "the wrong key's refusal is not logged"
grep -q "identity 'other' may read no region" "$WORK/livepeer.log" ||
	fail "the page server's refusal of another identity is not logged"
grep -q "refusing to take a live migration on port [0-9]* without authentication" "$WORK/livepeer.log" ||
	fail "the destination's refusal without credentials is not logged"
if [ -n "$addr" ]; then
	grep -q "refusing to send memory to $addr:[0-9]* without authentication" "$WORK/livepeer.log" ||
		fail "the source's refusal without credentials is not logged"
fi
