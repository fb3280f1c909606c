#!/usr/bin/env bash
# The sidecar's memory at a fixed request rate, measured on the built image as a pod runs it:
#   images/measure-memory.sh [SECONDS] [RATE]      (defaults 30 s, 1000 req/s)
#
# Two network namespaces joined by a veth (addresses exist only inside them): the "pod" runs an
# HTTP app on :8080 as UID 1000, remora-init's rules (from the image) and remora-proxy (the image,
# as 1337, read-only, no capabilities); the "client" namespace sends `hey -q R/10 -c 10` to
# pod:8080, which the rules capture into the proxy's inbound listener. Every second it sums PSS
# (/proc/PID/smaps_rollup) and RSS over the container's processes (tini, supervisor, engine) and
# reads the container's memory cgroup (what a memory limit is enforced on). Prints the largest
# sample of each; used for the injector's default proxy memory request and limit
# (docs/deploy.md, "Sidecar memory"), and at the end PSS (and its anonymous part) per process.
# REMORA_IMAGE_TAG picks another build of the image (default: the version in package.json).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-30}
RATE=${2:-1000}
TAG=${REMORA_IMAGE_TAG:-$(node -p 'require("./package.json").version')}
IMAGE=${REMORA_IMAGE_REPO:-ghcr.io/remora-mesh}/remora-proxy:$TAG
ID=rmrm-$$
POD=$ID-pod
CLIENT=$ID-client
APP_PID=

cleanup() {
  podman rm --force --ignore -t 0 "$ID-proxy" >/dev/null 2>&1 || true
  podman rm --force --ignore -t 0 "$ID-init" >/dev/null 2>&1 || true
  [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null || true
  ip netns del "$POD" 2>/dev/null || true
  ip netns del "$CLIENT" 2>/dev/null || true
}
trap cleanup EXIT

ip netns add "$POD"
ip netns add "$CLIENT"
ip -n "$POD" link set lo up
ip -n "$CLIENT" link set lo up
ip -n "$POD" link add "r$$p" type veth peer name "r$$c" netns "$CLIENT"
ip -n "$POD" addr add 10.213.250.1/30 dev "r$$p"
ip -n "$CLIENT" addr add 10.213.250.2/30 dev "r$$c"
ip -n "$POD" link set "r$$p" up
ip -n "$CLIENT" link set "r$$c" up

ip netns exec "$POD" setpriv --reuid=1000 --regid=1000 --clear-groups node -e '
  require("node:http").createServer((q, s) => s.end("ok\n")).listen(8080, "0.0.0.0");' &
APP_PID=$!

images/podman.sh run --rm --name "$ID-init" --network "ns:/run/netns/$POD" --user 0:0 \
  --cap-drop=ALL --cap-add=NET_ADMIN,NET_RAW --read-only --mount type=tmpfs,destination=/run \
  "$IMAGE" node /app/proxy/dist/bin/remora-init.js >/dev/null 2>&1
images/podman.sh run -d --name "$ID-proxy" --network "ns:/run/netns/$POD" --user 1337:1337 \
  --cap-drop=ALL --security-opt no-new-privileges --read-only --read-only-tmpfs=false \
  --mount type=tmpfs,destination=/var/run/remora,tmpfs-mode=0700,chown=true \
  -e REMORA_LOG_LEVEL=warn "$IMAGE" >/dev/null
for _ in $(seq 1 100); do
  ip netns exec "$CLIENT" curl -fsS -m 1 -o /dev/null http://10.213.250.1:15020/healthz/ready 2>/dev/null && break
  sleep 0.2
done
ip netns exec "$CLIENT" curl -fsS -m 2 http://10.213.250.1:8080/ >/dev/null # captured, proxied

cgroup=$(podman inspect --format '{{.State.CgroupPath}}' "$ID-proxy" 2>/dev/null || true)
memfile=
for f in "/sys/fs/cgroup/memory$cgroup/memory.usage_in_bytes" "/sys/fs/cgroup$cgroup/memory.current"; do
  [ -f "$f" ] && memfile=$f && break
done

sample() { # prints "pss_kb rss_kb cgroup_bytes"
  local pss=0 rss=0 p
  for p in $(podman top "$ID-proxy" hpid | tail -n +2); do
    [ -r "/proc/$p/smaps_rollup" ] || continue
    pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")))
    rss=$((rss + $(awk '/^Rss:/ {print $2}' "/proc/$p/smaps_rollup")))
  done
  echo "$pss $rss $([ -n "$memfile" ] && cat "$memfile" || echo 0)"
}

echo "idle: $(sample)" >&2
ip netns exec "$CLIENT" hey -z "${SECONDS_RUN}s" -q $((RATE / 10)) -c 10 http://10.213.250.1:8080/ \
  >"/tmp/$ID-hey.txt" 2>&1 &
HEY=$!
max_pss=0 max_rss=0 max_cg=0 n=0
while kill -0 "$HEY" 2>/dev/null; do
  sleep 1
  read -r pss rss cg < <(sample)
  n=$((n + 1))
  [ "$pss" -gt "$max_pss" ] && max_pss=$pss
  [ "$rss" -gt "$max_rss" ] && max_rss=$rss
  [ "$cg" -gt "$max_cg" ] && max_cg=$cg
done
wait "$HEY" || true
grep -E "Requests/sec|Status code|\[200\]|Error" "/tmp/$ID-hey.txt" | sed 's/^/hey: /' || true
rm -f "/tmp/$ID-hey.txt"
per=$(for p in $(podman top "$ID-proxy" hpid | tail -n +2); do
  printf '%s:%s=%s(anon %s) ' "$(cat "/proc/$p/comm")" \
    "$(tr '\0' ' ' <"/proc/$p/cmdline" | awk '{print $NF}' | xargs basename)" \
    "$(awk '/^Pss:/ {printf "%.1f", $2/1024}' "/proc/$p/smaps_rollup")" \
    "$(awk '/^Pss_Anon:/ {printf "%.1f", $2/1024}' "/proc/$p/smaps_rollup")"
done)
echo "at $RATE req/s for $SECONDS_RUN s, $n samples: PSS max $((max_pss / 1024)) MiB, RSS max $((max_rss / 1024)) MiB, cgroup max $((max_cg / 1048576)) MiB; PSS MiB at the end: $per"
