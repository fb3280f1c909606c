#!/usr/bin/env bash
# CPU µs per request of remora's engine with telemetry on, part by part: like cpu-per-request.sh
# (explicit mode, inbound, 1,000 req/s with hey -q 100 -c 10, 10 s after a 3 s warm-up, utime+stime
# from /proc/<pid>/stat), with the engine's stdout a pipe that a reader drains (as under the
# supervisor or a container runtime) and MODE one of:
#   off      access log off, sampling 0, no scrape (the baseline)
#   log      access log on at REMORA_LOG_LEVEL=info only
#   trace    REMORA_TRACE_SAMPLING=0.01 exporting OTLP/HTTP to the receiver only (level warn)
#   scrape   /metrics scraped every 5 s only
#   all      the three together (how users run it; what `npm run bench` calls telemetry on)
# Servers first (backend on :18090, OTLP receiver on :18091; `npx tsc -p demo` once):
#   node bench/ab/telemetry-servers.mjs 18090 18091 &
# then alternate: bash bench/ab/cpu-per-request-telemetry.sh <tree> <label> <port> <mode>
# The reader counts the access-log lines; the line printed ends with lines=<n>.
set -euo pipefail
tree=$1; label=$2; port=$3; mode=${4:-all}
backend=${BACKEND:-127.0.0.1:18090}; otlp=${OTLP:-http://127.0.0.1:18091}
mport=$((port + 1000))
accesslog=off; level=warn; sampling=0; scrape=0
case $mode in
  off) ;;
  log) accesslog=on; level=info ;;
  trace) sampling=0.01 ;;
  scrape) scrape=1 ;;
  all) accesslog=on; level=info; sampling=0.01; scrape=1 ;;
  *) echo "mode: off|log|trace|scrape|all" >&2; exit 2 ;;
esac
cd "$tree"
lines=$(mktemp)
otel=()
if [ "$sampling" != 0 ]; then otel=(OTEL_EXPORTER_OTLP_ENDPOINT=$otlp OTEL_BSP_SCHEDULE_DELAY=1000); fi
env REMORA_BIND_HOST=127.0.0.1 REMORA_INBOUND_PORT=$port REMORA_OUTBOUND_PORT=0 REMORA_HEALTH_PORT=0 \
  REMORA_METRICS_PORT=$mport REMORA_ADMIN_PORT=0 REMORA_INBOUND_TARGET=$backend REMORA_ACCESS_LOG=$accesslog \
  REMORA_LOG_LEVEL=$level REMORA_TRACE_SAMPLING=$sampling "${otel[@]}" \
  node ${NODE_EXTRA:-} --input-type=module -e 'import("./proxy/dist/main.js").then(m => m.main()).then(c => process.exit(c))' \
  2>/dev/null > >(grep -c '"log":"access"' >"$lines" || true) &
pid=$!
for i in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
scraper=
if [ "$scrape" = 1 ]; then
  (while sleep 5; do curl -s -o /dev/null "http://127.0.0.1:$mport/metrics"; done) &
  scraper=$!
fi
hey -q 100 -c 10 -z 3s "http://127.0.0.1:$port/" >/dev/null 2>&1   # warm-up
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
out=$(hey -q 100 -c 10 -z 10s "http://127.0.0.1:$port/")
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
[ -n "$scraper" ] && kill "$scraper"
n=$(echo "$out" | awk '$1 == "[200]" {print $2; exit}')
p50=$(echo "$out" | awk '/ 50% in/{print $3}')
p99=$(echo "$out" | awk '/ 99% in/{print $3}')
tck=$(getconf CLK_TCK)
kill -TERM $pid; wait $pid 2>/dev/null || true
sleep 0.3
echo "$label mode=$mode requests=$n cpu_us_per_req=$(awk -v a=$t0 -v b=$t1 -v n=$n -v t=$tck 'BEGIN{printf "%.1f", (b-a)/t*1e6/n}') p50=${p50}s p99=${p99}s load=$(cut -d' ' -f1 /proc/loadavg) lines=$(cat "$lines")"
rm -f "$lines"
