#!/bin/sh
# A real Prometheus (Debian's package) scrapes both daemons during a
# verified post-copy: it negotiates OpenMetrics, so its strict parser reads
# what we serve; the targets must be up without a scrape error, and the
# stored series must show the workload as it ended (queried through
# Prometheus's own HTTP API).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/metrics-lib.inc"
need_tool curl curl
need_tool prometheus prometheus
"$BIN/rpage-bench" mkimage "$WORK/img" 32M 6
SRV_ARGS="--metrics 127.0.0.1:0" start_server mem="$WORK/img"
SURL=$(metrics_url "$WORK/server.log" rpage-server)
start_client --connect 127.0.0.1:"$PORT" --metrics 127.0.0.1:0
CURL=$(metrics_url "$WORK/client.log" rpage-client)
hp() { u=${1#http://}; echo "${u%/metrics}"; }

PPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: rpage
    static_configs:
      - targets: ['$(hp "$SURL")', '$(hp "$CURL")']
EOF
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
	--web.listen-address=127.0.0.1:"$PPORT" >"$WORK/prometheus.log" 2>&1 &
PIDS="$PIDS $!"
PROM=http://127.0.0.1:$PPORT
i=0
until curl -sf --max-time 2 "$PROM/-/ready" >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -le 600 ] || fail "prometheus did not become ready: $(tail -n 5 "$WORK/prometheus.log")"
	sleep 0.1
done

"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 32M --seed 6 --threads 2 \
	>"$WORK/guest.log" 2>&1 &
GPID=$!
wait "$GPID" || fail "guest failed"
grep -q " 0 mismatches" "$WORK/guest.log" || fail "guest saw mismatches"
wait_line "$WORK/client.log" "process $GPID has gone"

python3 - "$PROM" "$GPID" <<'PY' || fail "Prometheus did not store what the daemons served"
import json, sys, time, urllib.parse, urllib.request
prom, pid = sys.argv[1], sys.argv[2]
def api(path, **q):
    u = prom + path + ("?" + urllib.parse.urlencode(q) if q else "")
    with urllib.request.urlopen(u, timeout=10) as r:
        d = json.load(r)
    assert d["status"] == "success", d
    return d["data"]
def one(expr):
    r = api("/api/v1/query", query=expr)["result"]
    return float(r[0]["value"][1]) if len(r) == 1 else None
want = {
    'rpage_client_processes{pid="%s",state="gone"}' % pid: lambda v: v == 1,
    'rpage_client_resident_ratio{pid="%s"}' % pid: lambda v: v == 1,
    'rpage_client_pages{pid="%s"}' % pid: lambda v: v == 8192,
    'rpage_client_faults_total{pid="%s"}' % pid: lambda v: v > 0,
    'rpage_client_fault_latency_seconds_count{pid="%s"} - rpage_client_faults_total' % pid:
        lambda v: v == 0,
    'histogram_quantile(0.99, rpage_client_fault_latency_seconds_bucket{pid="%s"})' % pid:
        lambda v: 0 < v < 10,
    'rpage_server_sent_bytes_total{region="mem"}': lambda v: v >= 32 << 20,
    'rpage_server_completions_total': lambda v: v == 1,
    'count(up == 1)': lambda v: v == 2,
}
def check(show):
    ok = True
    for t in api("/api/v1/targets")["activeTargets"]:
        if show:
            print("target %s: %s, last error %r" % (t["scrapeUrl"], t["health"], t["lastError"]))
        ok &= t["health"] == "up" and t["lastError"] == ""
    for expr, good in want.items():
        v = one(expr)
        if show:
            print("%s = %s" % (expr, v))
        ok &= v is not None and good(v)
    # units reach Prometheus only through OpenMetrics: it negotiated it
    md = api("/api/v1/metadata", metric="rpage_client_fault_latency_seconds")
    if show:
        print("metadata:", json.dumps(md))
    return ok and md.get("rpage_client_fault_latency_seconds", [{}])[0].get("unit") == "seconds"
# scrapes come every second: until one after the process went is stored
deadline = time.time() + 60
while not check(False) and time.time() < deadline:
    time.sleep(0.5)
ok = check(True)
sys.exit(0 if ok else 1)
PY
kill "$CLI_PID"
wait "$CLI_PID" || fail "client exited with $?"
