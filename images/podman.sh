#!/usr/bin/env bash
# `podman` with the flags this kind of machine needs, for the image tests and by hand:
#   images/podman.sh run --rm ghcr.io/remora-mesh/remora-proxy:0.1.0 …
#
# - The OCI runtime: crun (podman's default) refuses a hybrid cgroup layout ("cgroups in hybrid
#   mode not supported, drop all controllers from cgroupv2": v1 controllers plus a cgroup2 mount
#   with a controller enabled, as here); runc runs on v1 and hybrid. On a pure cgroup2 host the
#   default is kept.
# - Resource limits: as root podman sets RLIMIT_NOFILE and RLIMIT_NPROC to 1048576 in every
#   container, which needs CAP_SYS_RESOURCE; a root without it (a sandbox, as here) gets
#   "setrlimit: Operation not permitted". `run` and `create` get the caller's own hard limits
#   instead (nproc capped at 32768: above that podman's runc start fails the same way here).
set -euo pipefail

global=()
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
  global+=(--runtime runc --cgroup-manager cgroupfs)
fi

case "${1:-}" in
  run | create)
    sub=$1
    shift
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
    [ "$nofile" = unlimited ] && nofile=1048576
    exec podman "${global[@]}" "$sub" --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" "$@"
    ;;
  *) exec podman "${global[@]}" "$@" ;;
esac
