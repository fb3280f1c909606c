#!/usr/bin/env bash
# Builds the Kubernetes control plane for test/k8s (kube-apiserver with embedded etcd, and
# kube-controller-manager, from k8s.io/kubernetes; see harness/go.mod) into test/k8s/bin/.
# Incremental: it does nothing while bin/.stamp is newer than every file under harness/.
# The Go build cache (GOCACHE, ~/.cache/go-build by default) and the module cache make a
# rebuild after a change cheap; the first build on a clean machine takes minutes (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")"
export PATH="/usr/local/go/bin:$PATH" GOFLAGS=-mod=readonly
stamp=bin/.stamp
if [[ -f $stamp && -x bin/k8s-apiserver && -x bin/k8s-controller-manager ]] \
  && [[ -z $(find harness build.sh -newer "$stamp" -type f | head -1) ]]; then
  exit 0
fi
command -v go >/dev/null || { echo "test/k8s/build.sh: go not found (Go 1.26 at /usr/local/go/bin)" >&2; exit 1; }
mkdir -p bin
echo "test/k8s/build.sh: building kube-apiserver + etcd + kube-controller-manager (first build takes minutes)" >&2
start=$(date +%s)
# The release the module pins, stamped as a release build stamps it: without it the API server
# reports v0.0.0-master and clients (remora check, kubectl version) judge it older than 1.28.
release=$(sed -n 's/^[[:space:]]*k8s.io\/kubernetes v\([0-9.]*\)$/\1/p' harness/go.mod | head -1)
[[ -n $release ]] || { echo "test/k8s/build.sh: no k8s.io/kubernetes version in harness/go.mod" >&2; exit 1; }
IFS=. read -r major minor _ <<<"$release"
ver=k8s.io/component-base/version
ldflags="-s -w -X $ver.gitVersion=v$release -X $ver.gitMajor=$major -X $ver.gitMinor=$minor -X $ver.gitTreeState=clean"
(cd harness && go build -trimpath -ldflags="$ldflags" -o ../bin/ ./cmd/...)
echo "test/k8s/build.sh: built in $(( $(date +%s) - start ))s" >&2
touch "$stamp"
