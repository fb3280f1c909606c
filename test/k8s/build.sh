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
  && [[ -z $(find harness -newer "$stamp" -type f | head -1) ]]; then
  exit 0
fi
command -v go >/dev/null || { echo "test/k8s/build.sh: go not found (Go 1.26 at /usr/local/go/bin)" >&2; exit 1; }
mkdir -p bin
echo "test/k8s/build.sh: building kube-apiserver + etcd + kube-controller-manager (first build takes minutes)" >&2
start=$(date +%s)
(cd harness && go build -trimpath -ldflags='-s -w' -o ../bin/ ./cmd/...)
echo "test/k8s/build.sh: built in $(( $(date +%s) - start ))s" >&2
touch "$stamp"
