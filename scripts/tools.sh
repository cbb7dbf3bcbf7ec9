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
# The cluster DNS of the single-node Kubernetes (manifests/node_test.go).
build coredns github.com/coredns/coredns github.com/coredns/coredns

# Kubernetes, from tools/kubernetes: k8s.io/kubernetes at its pinned
# version, with the version stamped in as its own build does (kubectl
# refuses a server whose version it cannot parse). The API server and
# kubectl take the manifests server side (manifests/server_test.go); the
# controller manager, scheduler, kubelet and kube-proxy make the one-node
# cluster the images run on (manifests/node_test.go). The API server is the
# longest build here: about 5 minutes cold on 2 cores, 3 GB; the others
# share most of its packages.
build_kube() {
  local name=$1 dir="$root/tools/kubernetes" version bin minor
  version=$(cd "$dir" && go list -mod=readonly -m -f '{{.Version}}' k8s.io/kubernetes)
  bin="$cache/$name-$version"
  if [ ! -x "$bin" ]; then
    echo "tools: building $name $version (first time on this machine: several minutes)" >&2
    local start=$SECONDS
    minor=${version#v1.}
    minor=${minor%%.*}
    (cd "$dir" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 \
      -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean \
      -X k8s.io/client-go/pkg/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitMajor=1 \
      -X k8s.io/client-go/pkg/version.gitMinor=$minor" -o "$bin.tmp" "k8s.io/kubernetes/cmd/$name")
    mv "$bin.tmp" "$bin"
    echo "tools: built $name $version in $((SECONDS - start))s" >&2
  fi
  ln -sfn "../$name-$version" "$cache/bin/$name"
}
for cmd in kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy; do
  build_kube "$cmd"
done

# The Prometheus Operator's published CRDs, from its module at the version
# pinned in tools/promoperator (checked against go.sum by the download).
crds() {
  local dir="$root/tools/promoperator" version src dst
  version=$(cd "$dir" && go list -mod=readonly -m -f '{{.Version}}' github.com/prometheus-operator/prometheus-operator)
  dst="$cache/crds-prometheus-operator-$version"
  if [ ! -d "$dst" ]; then
    src=$(cd "$dir" && go mod download -json github.com/prometheus-operator/prometheus-operator | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    mkdir -p "$dst.tmp"
    cp "$src/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
      "$src/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" "$dst.tmp/"
    mv "$dst.tmp" "$dst"
  fi
  ln -sfn "../crds-prometheus-operator-$version" "$cache/bin/prometheus-operator-crds"
}
crds
