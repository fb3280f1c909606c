#!/usr/bin/env bash
# CPU µs per request of remora's engine (explicit mode, inbound → bench/ab/backend.mjs on
# 127.0.0.1:18080) at 1,000 req/s (hey -q 100 -c 10, 10 s after a 3 s warm-up), from
# /proc/<pid>/stat (and the engine's PSS at the end, smaps_rollup), for the built tree in $1; prints one line. For A/B runs of two commits:
#   node bench/ab/backend.mjs &   # then, alternating:
#   bash bench/ab/cpu-per-request.sh /path/to/before before 18101 [on|off]
#   bash bench/ab/cpu-per-request.sh /path/to/after after 18102 [on|off]   (on: access log)
# NODE picks the binary (default: node on PATH), NODE_FLAGS are put on its command line (the V8
# heap flags of docs/performance.md, "Memory"). pss_anon_kb is the part those flags change: on
# the host the binary's pages are shared with every other node process.
set -euo pipefail
tree=$1; label=$2; port=$3; accesslog=${4:-off}
cd "$tree"
# shellcheck disable=SC2086 # NODE_FLAGS is a list of flags
REMORA_BIND_HOST=127.0.0.1 REMORA_INBOUND_PORT=$port REMORA_OUTBOUND_PORT=0 REMORA_HEALTH_PORT=0 \
REMORA_METRICS_PORT=0 REMORA_ADMIN_PORT=0 REMORA_INBOUND_TARGET=${AB_BACKEND:-127.0.0.1:18080} REMORA_ACCESS_LOG=$accesslog \
REMORA_LOG_LEVEL=warn "${NODE:-node}" ${NODE_FLAGS:-} --input-type=module -e 'import("./proxy/dist/main.js").then(m => m.main()).then(c => process.exit(c))' >/dev/null 2>&1 &
pid=$!
for i in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
hey -q 100 -c 10 -z 3s "http://127.0.0.1:$port/" >/dev/null 2>&1   # warm-up
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
out=$(hey -q 100 -c 10 -z 10s "http://127.0.0.1:$port/")
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
n=$(echo "$out" | awk '/\[200\]/{print $2}')
p50=$(echo "$out" | awk '/ 50% in/{print $3}')
p99=$(echo "$out" | awk '/ 99% in/{print $3}')
tck=$(getconf CLK_TCK)
pss=$(awk '/^Pss:/{print $2}' /proc/$pid/smaps_rollup)
anon=$(awk '/^Pss_Anon:/{print $2}' /proc/$pid/smaps_rollup)
kill $pid; wait $pid 2>/dev/null || true
echo "$label requests=$n cpu_us_per_req=$(awk -v a=$t0 -v b=$t1 -v n=$n -v t=$tck 'BEGIN{printf "%.1f", (b-a)/t*1e6/n}') p50=${p50}s p99=${p99}s pss_kb=$pss pss_anon_kb=$anon"
