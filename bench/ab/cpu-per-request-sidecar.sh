#!/usr/bin/env bash
# As cpu-per-request.sh, for the whole sidecar as a pod runs it: remora-proxy (the supervisor,
# which owns the listeners and forks the engine) in explicit mode, inbound → bench/ab/backend.mjs
# on 127.0.0.1:18080, at 1,000 req/s (hey -q 100 -c 10, 10 s after a 3 s warm-up). Prints the
# engine's and the supervisor's CPU µs per request separately (/proc/<pid>/stat utime+stime over
# the measured run ÷ requests) and their sum. Usage, alternating two built trees:
#   node bench/ab/backend.mjs &
#   bash bench/ab/cpu-per-request-sidecar.sh /path/to/before before 18111 [on|off]
#   bash bench/ab/cpu-per-request-sidecar.sh /path/to/after after 18112 [on|off]   (on: access log)
set -euo pipefail
tree=$1; label=$2; port=$3; accesslog=${4:-off}
cd "$tree"
REMORA_BIND_HOST=127.0.0.1 REMORA_INBOUND_PORT=$port REMORA_OUTBOUND_PORT=$((port + 1)) \
REMORA_HEALTH_PORT=$((port + 2)) REMORA_METRICS_PORT=$((port + 3)) REMORA_ADMIN_PORT=$((port + 4)) \
REMORA_INBOUND_TARGET=${AB_BACKEND:-127.0.0.1:18080} REMORA_ACCESS_LOG=$accesslog REMORA_TRACE_SAMPLING=0 \
REMORA_LOG_LEVEL=warn node proxy/dist/bin/remora-proxy.js >/dev/null 2>&1 &
sup=$!
for i in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
eng=$(pgrep -P "$sup" | head -1)
hey -q 100 -c 10 -z 3s "http://127.0.0.1:$port/" >/dev/null 2>&1   # warm-up
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
s0=$(cpu "$sup"); e0=$(cpu "$eng")
out=$(hey -q 100 -c 10 -z 10s "http://127.0.0.1:$port/")
s1=$(cpu "$sup"); e1=$(cpu "$eng")
n=$(echo "$out" | awk '/\[200\]/{print $2}')
p50=$(echo "$out" | awk '/ 50% in/{print $3}')
p99=$(echo "$out" | awk '/ 99% in/{print $3}')
tck=$(getconf CLK_TCK)
kill "$sup"; wait "$sup" 2>/dev/null || true
us() { awk -v a="$1" -v b="$2" -v n="$n" -v t="$tck" 'BEGIN{printf "%.1f", (b-a)/t*1e6/n}'; }
echo "$label requests=$n engine_us=$(us "$e0" "$e1") supervisor_us=$(us "$s0" "$s1") sum_us=$(us $((s0 + e0)) $((s1 + e1))) p50=${p50}s p99=${p99}s load=$(cut -d' ' -f1-3 /proc/loadavg)"
