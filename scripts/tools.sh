#!/usr/bin/env bash
# Builds the real services the tests and `make stack` run (Consul, versitygw)
# and the clients they drive (grpcurl)
# from the Go module proxy, at the versions pinned in tools/*/go.mod, into a
# per-user cache that a fresh clone on the same machine finds again:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/sentiment-analyzer-pro/<name>-<version>
# A binary is rebuilt only when its pinned version changes.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/sentiment-analyzer-pro
mkdir -p "$cache/bin"

# build NAME MODULE PACKAGE: build PACKAGE from tools/NAME at MODULE's pinned version.
build() {
  local name=$1 module=$2 pkg=$3 dir="$root/tools/$1" version bin
  version=$(cd "$dir" && go list -mod=readonly -m -f '{{.Version}}' "$module")
  bin="$cache/$name-$version"
  if [ ! -x "$bin" ]; then
    echo "tools: building $name $version (first time on this machine: a few minutes on 2 cores, Consul the longest)" >&2
    local start=$SECONDS
    (cd "$dir" && CGO_ENABLED=0 go build -mod=readonly -trimpath -o "$bin.tmp" "$pkg")
    mv "$bin.tmp" "$bin"
    echo "tools: built $name $version in $((SECONDS - start))s" >&2
  fi
  ln -sfn "../$name-$version" "$cache/bin/$name"
}

build consul github.com/hashicorp/consul github.com/hashicorp/consul
build versitygw github.com/versity/versitygw github.com/versity/versitygw/cmd/versitygw
build staticcheck honnef.co/go/tools honnef.co/go/tools/cmd/staticcheck
build grpcurl github.com/fullstorydev/grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl
