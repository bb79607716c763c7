#!/bin/sh
# Who may read the metrics: beyond loopback only with X.509 credentials.
# Without credentials, or with a pre-shared key (no scraper speaks
# TLS-PSK), a --metrics address that is not loopback is refused at start
# with a message naming the fix; with X.509 the endpoint is HTTPS and
# takes only clients whose certificate the CA signed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/metrics-lib.inc"
need_tool curl curl
need_tool promtool prometheus
"$BIN/rpage-bench" mkimage "$WORK/img" 4M 3

# refused_at_start LOG WHAT CMD...: CMD must exit non-zero without
# becoming ready, and say both that the address is beyond loopback and
# how to fix it
refused_at_start() {
	log=$1 what=$2
	shift 2
	if timeout 20 "$@" >"$log" 2>&1; then
		fail "$what: started with --metrics beyond loopback"
	fi
	! grep -q "ready on" "$log" || fail "$what: became ready: $(cat "$log")"
	grep -q "is beyond loopback" "$log" || fail "$what: no reason given: $(cat "$log")"
	grep -q -- "--tls-cert, --tls-key, --tls-ca" "$log" || fail "$what: the fix is not named: $(cat "$log")"
	grep -q -- "--metrics 127.0.0.1:PORT" "$log" || fail "$what: loopback not offered: $(cat "$log")"
	echo "$what: $(grep -m1 'is beyond loopback' "$log" | cut -c1-160)..."
}

# a malformed address is a bad command line (2), caught before anything
# listens; getaddrinfo alone would take port 99999 and listen elsewhere
for a in nohost 127.0.0.1:99999 :-1 :http; do
	rc=0
	timeout 20 "$BIN/rpage-server" --listen 127.0.0.1:0 --region mem="$WORK/img" \
		--metrics "$a" >"$WORK/addr.log" 2>&1 || rc=$?
	[ $rc = 2 ] || fail "--metrics $a: exit status $rc, not 2: $(cat "$WORK/addr.log")"
	grep -q "wants HOST:PORT or :PORT" "$WORK/addr.log" || fail "--metrics $a: $(cat "$WORK/addr.log")"
done

refused_at_start "$WORK/r1.log" "server, no credentials" \
	"$BIN/rpage-server" --listen 127.0.0.1:0 --region mem="$WORK/img" --metrics 0.0.0.0:0
gen_psk "$WORK/keys.psk"
refused_at_start "$WORK/r2.log" "server, pre-shared key" \
	"$BIN/rpage-server" --listen 127.0.0.1:0 --region mem="$WORK/img" \
	--psk-file "$WORK/keys.psk" --metrics 0.0.0.0:0
grep -q "pre-shared key cannot protect it" "$WORK/r2.log" || fail "the PSK refusal does not say why"

start_server mem="$WORK/img"
refused_at_start "$WORK/r3.log" "client, no credentials" \
	"$BIN/rpage-client" --connect 127.0.0.1:"$PORT" --uffd-socket "$WORK/u3.sock" \
	--metrics 0.0.0.0:0
stop_server

# X.509: HTTPS on every address, a client certificate required
gen_pki "$WORK/pki"
P="$WORK/pki"
SRV_ARGS="--tls-cert $P/server.crt --tls-key $P/server.key --tls-ca $P/ca.crt --metrics 0.0.0.0:0" \
	start_server mem="$WORK/img"
URL=$(metrics_url "$WORK/server.log" rpage-server)
case $URL in https://0.0.0.0:*/metrics) ;; *) fail "not HTTPS on every address: $URL" ;; esac
MPORT=${URL#https://0.0.0.0:}
MPORT=${MPORT%/metrics}
HTTPS=https://127.0.0.1:$MPORT/metrics
# no client certificate: no metrics
if curl -sS --max-time 10 --cacert "$P/ca.crt" -o "$WORK/nocert" "$HTTPS" 2>"$WORK/nocert.err"; then
	fail "metrics served without a client certificate"
fi
[ ! -s "$WORK/nocert" ] || fail "bytes served without a client certificate"
# plain HTTP to the HTTPS port: no metrics
if curl -sS --max-time 10 -o "$WORK/plain" "http://127.0.0.1:$MPORT/metrics" 2>"$WORK/plain.err"; then
	fail "metrics served over plain HTTP beyond loopback"
fi
! grep -q rpage_server "$WORK/plain" 2>/dev/null || fail "metrics in the clear"
# a certificate from another CA: no metrics
mkdir -p "$WORK/other"
(
	cd "$WORK/other" && printf 'cn = "other CA"\nca\ncert_signing_key\n' >ca.tmpl &&
		printf 'cn = "client1"\ntls_www_client\n' >c.tmpl &&
		certtool -p --key-type ecdsa --outfile ca.key &&
		certtool -s --load-privkey ca.key --template ca.tmpl --outfile ca.crt &&
		certtool -p --key-type ecdsa --outfile c.key &&
		certtool -c --load-privkey c.key --load-ca-certificate ca.crt \
			--load-ca-privkey ca.key --template c.tmpl --outfile c.crt
) >"$WORK/other.log" 2>&1 || fail "certtool could not make the foreign certificate"
if curl -sS --max-time 10 --cacert "$P/ca.crt" --cert "$WORK/other/c.crt" \
	--key "$WORK/other/c.key" -o "$WORK/foreign" "$HTTPS" 2>"$WORK/foreign.err"; then
	fail "metrics served to a certificate another CA signed"
fi
# a peer of the page server that does not speak TLS: refused, counted
python3 - "$PORT" <<'PY' || fail "the server did not close a peer without TLS"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"NOT-TLS-" * 8)
while s.recv(4096):
    pass
PY
# the CA's client certificate: the metrics, as Prometheus would get them
# with tls_config { ca_file, cert_file, key_file }
scrape "$HTTPS" tls --cacert "$P/ca.crt" --cert "$P/client1.crt" --key "$P/client1.key"
promcheck "$WORK/tls"
mcheck "$WORK/tls" 'm("rpage_server_region_size_bytes", region="mem") == 4 << 20 and
m("rpage_server_metrics_http_requests_total", code="none") == 3 and
m("rpage_server_metrics_http_requests_total", code="200") == 1 and
m("rpage_server_connections_refused_total", reason="tls") == 1 and
sum(v for l, v in M("rpage_server_connections_refused_total")) == 1'
echo "refused: no certificate ($(head -c 100 "$WORK/nocert.err")), plain HTTP ($(head -c 100 "$WORK/plain.err")), a foreign CA ($(head -c 100 "$WORK/foreign.err"))"
