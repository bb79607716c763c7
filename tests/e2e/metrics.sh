#!/bin/sh
# --metrics on both daemons around a verified post-copy over TCP: scraped
# with curl in both formats, checked by the real `promtool check metrics`,
# and every figure checked against the workload (the image's pages, the
# balloon's zeros) and against the client's own JSON statistics.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/metrics-lib.inc"
need_tool curl curl
need_tool promtool prometheus
PAGES=16384 # 64 MiB of 4 KiB pages
"$BIN/rpage-bench" mkimage "$WORK/img" 64M 9
SRV_ARGS="--metrics 127.0.0.1:0" start_server mem="$WORK/img"
SURL=$(metrics_url "$WORK/server.log" rpage-server)
start_client --connect 127.0.0.1:"$PORT" --metrics :0
CURL=$(metrics_url "$WORK/client.log" rpage-client)
case $CURL in http://127.0.0.1:*) ;; *) fail "--metrics :0 is not on loopback: $CURL" ;; esac

# before any process: the families are there, nothing counted
scrape "$CURL" c0
promcheck "$WORK/c0"
mcheck "$WORK/c0" 'm("rpage_client_processes_served_total") == 0 and
m("rpage_client_processes_active") == 0 and M("rpage_client_faults_total") == []'

"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 64M --seed 9 \
	--threads 2 --balloon 4M >"$WORK/guest.log" 2>&1 &
GPID=$!
export P=$GPID # the pid label in the checks
wait "$GPID" || fail "guest failed"
grep -q " 0 mismatches" "$WORK/guest.log" || fail "guest saw mismatches"
wait_line "$WORK/client.log" "process $GPID has gone"

# the process has gone: its own series keep how it ended
scrape "$CURL" client
promcheck "$WORK/client"
mcheck "$WORK/client" '
m("rpage_client_processes_served_total") == 1 and
m("rpage_client_processes_failed_total") == 0 and
m("rpage_client_processes_active") == 0 and
m("rpage_client_processes", pid=P, state="gone") == 1 and
m("rpage_client_processes", pid=P, state="running") == 0 and
m("rpage_client_pages", pid=P) == '$PAGES' and
m("rpage_client_resident_pages", pid=P) == '$PAGES' and
m("rpage_client_resident_ratio", pid=P) == 1 and
m("rpage_client_faults_total", pid=P) > 0 and
m("rpage_client_pages_placed_total", pid=P, origin="fault") +
  m("rpage_client_pages_placed_total", pid=P, origin="fill") == '$PAGES' and
m("rpage_client_pages_placed_total", pid=P, origin="zero") == 1024 and
m("rpage_client_fetched_bytes_total", pid=P, origin="fault") > 0 and
m("rpage_client_reconnects_total", pid=P) == 0 and
m("rpage_client_recovery_in_progress_seconds", pid=P) == 0 and
m("rpage_client_blocked_seconds_total", pid=P) > 0 and
m("rpage_client_fault_latency_seconds_count", pid=P) == m("rpage_client_faults_total", pid=P)
'
# the same figures as the statistics the client wrote when it went
mcheck "$WORK/client" '
s[-1]["faults"] == m("rpage_client_faults_total", pid=P) and
s[-1]["pages_by_fault"] == m("rpage_client_pages_placed_total", pid=P, origin="fault") and
s[-1]["pages_by_fill"] == m("rpage_client_pages_placed_total", pid=P, origin="fill") and
s[-1]["pages_zeroed"] == m("rpage_client_pages_placed_total", pid=P, origin="zero") and
s[-1]["bytes_fault"] == m("rpage_client_fetched_bytes_total", pid=P, origin="fault") and
s[-1]["bytes_fill"] == m("rpage_client_fetched_bytes_total", pid=P, origin="fill") and
s[-1]["faults_waited"] == m("rpage_client_faults_waited_total", pid=P)
' "$WORK/stats.json"
# the histogram: QEMU's bounds 2^(i+1) us, cumulative, +Inf = count
mcheck "$WORK/client" '
[l["le"] for l, v in M("rpage_client_fault_latency_seconds_bucket")] ==
  [repr((2 << i) / 1e6) for i in range(23)] + ["+Inf"] and
all(a <= b for a, b in zip([v for l, v in M("rpage_client_fault_latency_seconds_bucket")],
                           [v for l, v in M("rpage_client_fault_latency_seconds_bucket")][1:])) and
M("rpage_client_fault_latency_seconds_bucket")[-1][1] == m("rpage_client_fault_latency_seconds_count", pid=P) and
0 < m("rpage_client_fault_latency_seconds_sum", pid=P) <= m("rpage_client_blocked_seconds_total", pid=P) * 1.000001
'

# the server: it sent what the client fetched, and the pages of faults
# that lost a race to the fill (fetched, not counted as the fault's)
scrape "$SURL" server
promcheck "$WORK/server"
mcheck "$WORK/server" '
m("rpage_server_connections_accepted_total") >= 3 and
m("rpage_server_connections_open") >= 1 and
m("rpage_server_sessions_active") == 1 and
m("rpage_server_sessions_parked") == 0 and
m("rpage_server_completions_total") == 1 and
m("rpage_server_page_requests_total", region="mem") > 0 and
m("rpage_server_region_size_bytes", region="mem") == 64 << 20 and
all(v == 0 for l, v in M("rpage_server_connections_refused_total")) and
len(M("rpage_server_connections_refused_total")) == 9'
python3 - "$WORK/client" "$WORK/server" <<'PY' || fail "the server's bytes do not match the client's"
import re, sys
c = open(sys.argv[1]).read()
fetched = sum(int(x) for x in re.findall(r'^rpage_client_fetched_bytes_total\{.*\} (\d+)$', c, re.M))
faults = int(re.search(r'^rpage_client_faults_total\{.*\} (\d+)$', c, re.M).group(1))
sent = int(re.search(r'^rpage_server_sent_bytes_total\{region="mem"\} (\d+)$', open(sys.argv[2]).read(), re.M).group(1))
print("client fetched %d bytes in %d faults and the fill, server sent %d" % (fetched, faults, sent))
sys.exit(not fetched <= sent <= fetched + 4096 * faults)
PY

# OpenMetrics when asked for, as Prometheus asks
scrape "$CURL" client.om -H 'Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
grep -qi '^content-type: application/openmetrics-text; version=1.0.0; charset=utf-8' "$WORK/client.om.head" ||
	fail "no OpenMetrics content type: $(cat "$WORK/client.om.head")"
grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' "$WORK/client.head" ||
	fail "no text content type: $(cat "$WORK/client.head")"
[ "$(tail -n 1 "$WORK/client.om")" = "# EOF" ] || fail "the OpenMetrics text does not end with # EOF"
grep -qx '# TYPE rpage_client_faults counter' "$WORK/client.om" || fail "OpenMetrics counter family"
grep -qx '# UNIT rpage_client_fault_latency_seconds seconds' "$WORK/client.om" || fail "OpenMetrics unit"
mcheck "$WORK/client.om" 'm("rpage_client_faults_total", pid=P) > 0'
# HEAD: the head of the same answer, no body
curl -sS --max-time 10 -I "$CURL" >"$WORK/head.out" || fail "HEAD failed"
grep -q "^HTTP/1.1 200 " "$WORK/head.out" || fail "HEAD: $(cat "$WORK/head.out")"

# every page arrived: a TERM ends the client without killing anything
kill "$CLI_PID"
wait "$CLI_PID" || fail "client exited with $?"
echo "client metrics: $(grep -c '^rpage_client' "$WORK/client") samples, server: $(grep -c '^rpage_server' "$WORK/server")"
grep "^rpage_client_faults_total\|^rpage_client_resident_ratio\|fault_latency_seconds_count" "$WORK/client"
