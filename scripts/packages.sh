#!/usr/bin/env bash
# Installs the Debian packages the tests drive for real: buildah (builds the
# Dockerfiles offline), prometheus (promtool and the server) and chromium
# (the console's tests drive it headless), python3-grpcio and
# python3-grpc-tools (a gRPC client of the edge), etcd-server (the store of
# the Kubernetes API server the manifests are applied to), and the node the
# images run on: containerd, runc, the CNI plugins (bridge, host-local,
# loopback, portmap), nftables (kube-proxy's mode) and conntrack. Only what
# is missing is installed; installing needs root. iproute2 and iptables make
# the network namespaces of the reliability scenarios.
#   scripts/packages.sh          what make test needs
#   scripts/packages.sh torch    PyTorch, ONNX and OpenBLAS, to train the example
#                                ONNX models (make model-onnx)
#   scripts/packages.sh bench    those, and Flask and gunicorn: make bench's
#                                baseline serves the example model as the
#                                original product did
set -euo pipefail

need=()
has_py() { /usr/bin/python3 -c "import $1" 2>/dev/null; }
torch() {
  has_py torch || need+=(python3-torch)
  has_py onnx || need+=(python3-onnx)
  # Without OpenBLAS, Debian's torch multiplies matrices with the reference
  # BLAS: training the example is 7x slower.
  [ -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ] || need+=(libopenblas0-pthread)
}
case "${1:-}" in
torch) torch ;;
bench)
  torch
  has_py flask || need+=(python3-flask)
  command -v gunicorn >/dev/null || need+=(gunicorn)
  ;;
*)
  command -v buildah >/dev/null || need+=(buildah)
  { command -v promtool && command -v prometheus; } >/dev/null || need+=(prometheus)
  command -v iptables >/dev/null || need+=(iptables)
  command -v ip >/dev/null || need+=(iproute2)
  command -v chromium >/dev/null || need+=(chromium)
  # gRPC clients written by someone else's tools: the conformance tests
  # generate Python stubs from the Open Inference Protocol's proto.
  has_py grpc || need+=(python3-grpcio)
  has_py grpc_tools.protoc || need+=(python3-grpc-tools)
  command -v etcd >/dev/null || need+=(etcd-server)
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
  command -v nft >/dev/null || need+=(nftables)
  command -v conntrack >/dev/null || need+=(conntrack)
  ;;
esac
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "packages: missing ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "packages: installing ${need[*]} from Debian" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
  { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
