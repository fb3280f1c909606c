#!/usr/bin/env bash
# Instructions per request of remora's engine, counted by valgrind (callgrind), for the built
# tree in $1: a figure that does not move with the machine's load, for changes too small for
# CPU µs per request to show (those swing ±15 µs between runs of the same tree here). Runs of
# one tree agree within ~0.1-5 %; see docs/performance.md, "Counting instructions". User-space
# instructions only (the kernel's socket work is not counted), of every thread of the engine
# (V8's compiler and GC helpers too), one request at a time.
#
# The engine runs as cpu-per-request-telemetry.sh runs it (explicit mode, inbound → $BACKEND,
# stdout drained) under `valgrind --tool=callgrind --instr-atstart=no`: WARM requests with
# counting off, over 10 connections one after the other (the JIT tiers up and settles: a first
# connection's code deoptimizes on the second one's new object shapes, and TurboFan recompiling
# was half of all instructions counted after a one-connection warm-up), then counting on and
# zeroed, then COUNT requests over one more connection, one at a time (hey -c 1), then the
# counters are dumped and their total ÷ COUNT printed.
#   MODE        off | log | trace | all, as in cpu-per-request-telemetry.sh (trace exports to $OTLP)
#   TRACEPARENT sent by the client on every request if set (a meshed caller: sidecar B's case)
#   KEEP=FILE   keeps the dump (and, with NODE_EXTRA=--perf-basic-prof, the JIT's symbol map as
#               FILE.map) for bench/ab/callgrind-symbols.mjs: per-function self instructions
#   NODE_EXTRA  node flags (--perf-basic-prof; --trace-opt --trace-deopt with STDOUT=FILE, whose
#               line count at the start of the counted run is written to FILE.mark)
# Servers first (backend on :18090, OTLP receiver on :18091; `npx tsc -p demo` once):
#   node bench/ab/telemetry-servers.mjs 18090 18091 &
#   bash bench/ab/instructions-per-request.sh <tree> <label> <port> <mode>
# Needs valgrind (apt-get install -y valgrind). About 25 s per run at the defaults.
set -euo pipefail
tree=$1; label=$2; port=$3; mode=${4:-off}
backend=${BACKEND:-127.0.0.1:18090}; otlp=${OTLP:-http://127.0.0.1:18091}
warm=${WARM:-20000}; count=${COUNT:-2000}
accesslog=off; level=warn; sampling=0
case $mode in
  off) ;;
  log) accesslog=on; level=info ;;
  trace) sampling=0.01 ;;
  all) accesslog=on; level=info; sampling=0.01 ;;
  *) echo "mode: off|log|trace|all" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install -y valgrind)" >&2; exit 2; }
cd "$tree"
out=$(mktemp -d)
otel=()
if [ "$sampling" != 0 ]; then otel=(OTEL_EXPORTER_OTLP_ENDPOINT=$otlp OTEL_BSP_SCHEDULE_DELAY=1000); fi
hdr=()
if [ -n "${TRACEPARENT:-}" ]; then hdr=(-H "traceparent: $TRACEPARENT"); fi
env REMORA_BIND_HOST=127.0.0.1 REMORA_INBOUND_PORT=$port REMORA_OUTBOUND_PORT=0 REMORA_HEALTH_PORT=0 \
  REMORA_METRICS_PORT=0 REMORA_ADMIN_PORT=0 REMORA_INBOUND_TARGET=$backend REMORA_ACCESS_LOG=$accesslog \
  REMORA_LOG_LEVEL=$level REMORA_TRACE_SAMPLING=$sampling "${otel[@]}" \
  valgrind --tool=callgrind --instr-atstart=no --smc-check=all-non-file \
  --callgrind-out-file="$out/cg.%p" \
  node ${NODE_EXTRA:-} --input-type=module -e 'import("./proxy/dist/main.js").then(m => m.main()).then(c => process.exit(c))' \
  2>"$out/valgrind.log" >"${STDOUT:-/dev/null}" &
pid=$!
cleanup() {
  kill -TERM $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  rm -rf "$out" "/tmp/perf-$pid.map"
}
trap cleanup EXIT
for i in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
# The warm-up in 10 runs of one connection each: a connection's first requests take paths
# (new sockets, new object shapes) that deoptimize code tiered up on one connection only.
for i in $(seq 10); do hey -n $((warm / 10)) -c 1 "${hdr[@]}" "http://127.0.0.1:$port/" >/dev/null 2>&1; done
[ -n "${STDOUT:-}" ] && wc -l < "$STDOUT" > "$STDOUT.mark"
callgrind_control -i on $pid >/dev/null
callgrind_control -z $pid >/dev/null
res=$(hey -n "$count" -c 1 "${hdr[@]}" "http://127.0.0.1:$port/")
callgrind_control -d $pid >/dev/null
[ -n "${KEEP:-}" ] && { cp "$out/cg.$pid.1" "$KEEP"; cp "/tmp/perf-$pid.map" "$KEEP.map" 2>/dev/null || true; }
ok=$(echo "$res" | awk '$1 == "[200]" {print $2; exit}')
# The dump's totals line: the instructions counted since the zeroing, every thread summed.
ir=$(awk '/^totals:/{print $2; exit}' "$out/cg.$pid.1" 2>/dev/null || echo 0)
echo "$label mode=$mode requests=$ok instructions_per_req=$(awk -v i="$ir" -v n="${ok:-0}" 'BEGIN{if (n > 0) printf "%.0f", i/n; else print "nan"}')"
