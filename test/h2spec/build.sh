#!/usr/bin/env bash
# Builds h2spec (github.com/summerwind/h2spec, the HTTP/2 conformance tool) into test/h2spec/bin
# for test/proxy/http2/h2spec.test.ts. Incremental: nothing to do once bin/h2spec exists. Uses
# the Go module proxy and the Go build cache ($HOME/go, ~/.cache/go-build); ~30 s cold.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="/usr/local/go/bin:$PATH"
VERSION=v2.2.1+incompatible
# A binary that does not run (a build cut short once left a corrupt one) is rebuilt.
[[ -x bin/h2spec ]] && bin/h2spec --version >/dev/null 2>&1 && exit 0
command -v go >/dev/null || { echo "test/h2spec/build.sh: go not found (Go at /usr/local/go/bin)" >&2; exit 1; }
mkdir -p bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Built aside, then moved into place in one rename: a run cut short leaves no half binary.
GOBIN="$tmp" go install "github.com/summerwind/h2spec/cmd/h2spec@$VERSION"
mv -f "$tmp/h2spec" bin/h2spec
