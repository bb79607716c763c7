#!/bin/sh
# The pid label is bounded: 18 processes served at once get 16 series of
# their own and share pid="other"; the 16 keep their final figures after
# they go ("gone"), "other" keeps its processes' counts after they go (no
# series counts backwards), and a later process takes the slot of the
# process gone longest.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/metrics-lib.inc"
need_tool curl curl
need_tool promtool prometheus
N=18
"$BIN/rpage-bench" mkimage "$WORK/img" 2M 8
start_server mem="$WORK/img"
start_client --connect 127.0.0.1:"$PORT" --metrics :0
URL=$(metrics_url "$WORK/client.log" rpage-client)
GP=""
for i in $(seq $N); do
	# the pause keeps them all served at the same time
	"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 2M --seed 8 \
		--pause 6000 >"$WORK/guest$i.log" 2>&1 &
	GP="$GP $!"
done
wait_count "$WORK/client.log" "serving 1 range" $N 30
scrape "$URL" live
promcheck "$WORK/live"
mcheck "$WORK/live" '
len({l["pid"] for l, v in M("rpage_client_faults_total")}) == 17 and
"other" in {l["pid"] for l, v in M("rpage_client_faults_total")} and
m("rpage_client_processes_active") == '$N' and
sum(v for l, v in M("rpage_client_processes") if l["pid"] == "other") == 2 and
sum(v for l, v in M("rpage_client_processes")) == '$N' and
m("rpage_client_pages", pid="other") == 2 * 512 and
len(M("rpage_client_fault_latency_seconds_count")) == 17'
for p in $GP; do
	wait "$p" || fail "guest $p failed"
done
for i in $(seq $N); do
	grep -q " 0 mismatches" "$WORK/guest$i.log" || fail "guest $i saw mismatches"
done
wait_count "$WORK/client.log" "has gone" $N 30

# all gone: 16 series in state "gone", "other" with its counters only
scrape "$URL" gone
promcheck "$WORK/gone"
mcheck "$WORK/gone" '
len({l["pid"] for l, v in M("rpage_client_faults_total")}) == 17 and
m("rpage_client_processes_served_total") == '$N' and
m("rpage_client_processes_active") == 0 and
sum(v for l, v in M("rpage_client_processes") if l["state"] == "gone") == 16 and
[l for l, v in M("rpage_client_processes") if l["pid"] == "other"] == [] and
[l for l, v in M("rpage_client_resident_ratio") if l["pid"] == "other"] == [] and
all(v == 1 for l, v in M("rpage_client_resident_ratio")) and
m("rpage_client_faults_total", pid="other") == sum(x["faults"] for x in {x["name"]: x for x in s}.values()
    if x["name"].split()[-1] not in {l["pid"] for l, v in M("rpage_client_faults_total")}) and
m("rpage_client_pages_placed_total", pid="other", origin="fill") +
  m("rpage_client_pages_placed_total", pid="other", origin="fault") == 2 * 512 and
m("rpage_client_fault_latency_seconds_count", pid="other") == m("rpage_client_faults_total", pid="other")' \
	"$WORK/stats.json"
# "other" never counts backwards
python3 - "$WORK/live" "$WORK/gone" <<'PY' || fail "pid=\"other\" counted backwards"
import re, sys
def other(f):
    t = open(f).read()
    return {n: float(v) for n, v in re.findall(r'^(rpage_client_\w+_total)\{pid="other"[^}]*\} (\S+)$', t, re.M)}
a, b = other(sys.argv[1]), other(sys.argv[2])
print("other while served:", a.get("rpage_client_faults_total"), "after:", b.get("rpage_client_faults_total"))
sys.exit(not a or any(b[k] < a[k] for k in a))
PY

# a later process takes the slot of the one gone longest
FIRST=$(python3 - "$WORK/client.log" "$WORK/gone" <<'PY'
import re, sys
labelled = set(re.findall(r'^rpage_client_faults_total\{pid="(\d+)"\}', open(sys.argv[2]).read(), re.M))
gone = re.findall(r'^rpage-client: process (\d+) has gone', open(sys.argv[1]).read(), re.M)
print([p for p in gone if p in labelled][0])
PY
)
"$BIN/rpage-bench" guest --uffd-socket "$SOCK" --size 2M --seed 8 >"$WORK/late.log" 2>&1 &
LATE=$!
wait "$LATE" || fail "the late guest failed"
wait_count "$WORK/client.log" "has gone" $((N + 1)) 30
scrape "$URL" late
export P=$LATE
mcheck "$WORK/late" '
len({l["pid"] for l, v in M("rpage_client_faults_total")}) == 17 and
m("rpage_client_processes", pid=P, state="gone") == 1 and
m("rpage_client_resident_ratio", pid=P) == 1 and
"'"$FIRST"'" not in {l["pid"] for l, v in M("rpage_client_faults_total")}'
echo "18 processes: 16 labelled and other; process $LATE took the slot of $FIRST"
