#!/usr/bin/env bash
# CPU µs per gRPC unary call of remora's engine alone (explicit mode, inbound h2c →
# bench/ab/grpc-backend.mjs on 127.0.0.1:${GRPC_BACKEND_PORT:-18090}), at a fixed rate from h2load
# (nghttp2's C load generator, so the load tool costs the shared machine little): one connection,
# up to 10 streams in flight, ${RATE:-300} calls/s for ${SECONDS_RUN:-10} s after a 3 s warm-up,
# each call a 64-byte message. CPU from /proc/<pid>/stat utime+stime over the run ÷ calls answered.
# For A/B runs of two built trees (alternate them):
#   node bench/ab/grpc-backend.mjs &
#   bash bench/ab/grpc-cpu-per-call.sh /path/to/before before 18201
#   bash bench/ab/grpc-cpu-per-call.sh /path/to/after after 18202
# NODE_FLAGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") are passed to the engine's node.
set -euo pipefail
tree=$1; label=$2; port=$3
rate=${RATE:-300}; secs=${SECONDS_RUN:-10}; backend=${GRPC_BACKEND_PORT:-18090}
body=$(mktemp /tmp/remora-grpc-body.XXXXXX)
# gRPC message framing: flag 0, length 64 (big-endian), then 64 bytes
{ printf '\x00\x00\x00\x00\x40'; head -c 64 /dev/zero | tr '\0' 'x'; } >"$body"
cd "$tree"
# shellcheck disable=SC2086
REMORA_BIND_HOST=127.0.0.1 REMORA_INBOUND_PORT=$port REMORA_OUTBOUND_PORT=0 REMORA_HEALTH_PORT=0 \
REMORA_METRICS_PORT=0 REMORA_ADMIN_PORT=0 REMORA_INBOUND_TARGET=127.0.0.1:$backend REMORA_ACCESS_LOG=off \
REMORA_LOG_LEVEL=warn node ${NODE_FLAGS:-} --input-type=module -e 'import("./proxy/dist/main.js").then(m => m.main()).then(c => process.exit(c))' >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$body"' EXIT
load() {
  h2load -c 1 -m 10 --rps "$rate" -D "$1" -d "$body" -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$port/bench.Echo/Unary"
}
for i in $(seq 50); do h2load -n 1 -c 1 -d "$body" -H 'content-type: application/grpc' -H 'te: trailers' \
  "http://127.0.0.1:$port/bench.Echo/Unary" 2>/dev/null | grep -q '1 succeeded' && break; sleep 0.1; done
load 3 >/dev/null 2>&1   # warm-up
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
out=$(load "$secs")
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
n=$(echo "$out" | awk '/^requests:/{for(i=1;i<=NF;i++) if($(i+1)=="succeeded,") print $i}')
mean=$(echo "$out" | awk '/^time for request:/{print $6}')
tck=$(getconf CLK_TCK)
kill $pid; wait $pid 2>/dev/null || true
echo "$label calls=$n cpu_us_per_call=$(awk -v a=$t0 -v b=$t1 -v n=$n -v t=$tck 'BEGIN{printf "%.1f", (b-a)/t*1e6/n}') mean_call=$mean load=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
