#!/usr/bin/env bash
# The whole sidecar (supervisor + engine, explicit mode, inbound → bench/ab/backend.mjs on
# 127.0.0.1:18080) at 1,000 req/s (hey -q 100 -c 10, 10 s after a 3 s warm-up): CPU µs per
# request of each process (/proc/<pid>/stat) and its PSS and anonymous PSS at the end
# (smaps_rollup). Prints one line. For A/B runs of V8 flags, alternating:
#   node bench/ab/backend.mjs &
#   SUP_FLAGS='--max-semi-space-size=1' ENGINE_FLAGS='--max-semi-space-size=4' \
#     bash bench/ab/sidecar-memory.sh "$PWD" label 18111
# SUP_FLAGS go on the supervisor's command line (as the bin's shebang puts them); ENGINE_FLAGS
# reach the engine through NODE_OPTIONS, which replaces the built-in engine flag of the same name
# (proxy/src/supervisor/node-flags.ts). NODE picks the binary (default: node on PATH).
# On the host the Node binary's pages are shared with every other node process, so Pss is
# smaller than in the image; Pss_Anon (heap, stacks, malloc) is the part the flags change.
set -euo pipefail
tree=$1; label=$2; port=$3
node=${NODE:-node}
dir=$(mktemp -d)
cd "$tree"
# shellcheck disable=SC2086 # SUP_FLAGS is a list of flags
REMORA_BIND_HOST=127.0.0.1 REMORA_INBOUND_PORT=$port REMORA_OUTBOUND_PORT=0 REMORA_TUNNEL_PORT=0 \
REMORA_HEALTH_PORT=0 REMORA_METRICS_PORT=0 REMORA_ADMIN_PORT=0 REMORA_ADMIN_TOKEN_FILE="$dir/token" \
REMORA_INBOUND_TARGET=127.0.0.1:18080 REMORA_ACCESS_LOG=${ACCESS_LOG:-off} REMORA_LOG_LEVEL=warn REMORA_DRAIN_SECONDS=1 \
NODE_OPTIONS=${ENGINE_FLAGS:-} PATH="$(dirname "$(command -v "$node")"):$PATH" \
  "$node" ${SUP_FLAGS:-} proxy/dist/bin/remora-proxy.js >"$dir/log" 2>&1 &
sup=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
eng=$(pgrep -P "$sup" -f engine-child.js | head -1)
hey -q 100 -c 10 -z 3s "http://127.0.0.1:$port/" >/dev/null 2>&1 # warm-up
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
s0=$(cpu "$sup"); e0=$(cpu "$eng")
out=$(hey -q 100 -c 10 -z 10s "http://127.0.0.1:$port/")
s1=$(cpu "$sup"); e1=$(cpu "$eng")
n=$(echo "$out" | awk '/\[200\]/{print $2}')
p99=$(echo "$out" | awk '/ 99% in/{print $3}')
tck=$(getconf CLK_TCK)
us() { awk -v a="$1" -v b="$2" -v n="$n" -v t="$tck" 'BEGIN{printf "%.1f", (b-a)/t*1e6/n}'; }
kb() { awk -v k="$2:" '$1 == k {printf "%.1f", $2/1024}' "/proc/$1/smaps_rollup"; }
threads() { awk '/^Threads:/{print $2}' "/proc/$1/status"; }
echo "$label requests=$n p99=${p99}s" \
  "supervisor: cpu_us=$(us "$s0" "$s1") pss=$(kb "$sup" Pss) anon=$(kb "$sup" Pss_Anon) threads=$(threads "$sup")" \
  "engine: cpu_us=$(us "$e0" "$e1") pss=$(kb "$eng" Pss) anon=$(kb "$eng" Pss_Anon) threads=$(threads "$eng")" \
  "cmdline: $(tr '\0' ' ' <"/proc/$eng/cmdline")"
kill "$sup"
wait "$sup" 2>/dev/null || true
kill "$eng" 2>/dev/null || true
rm -rf "$dir"
