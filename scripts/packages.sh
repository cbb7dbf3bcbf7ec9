#!/usr/bin/env bash
# Installs the Debian packages the tests drive for real: buildah (builds the
# Dockerfiles offline), prometheus (promtool and the server) and chromium
# (the console's tests drive it headless). Only what
# is missing is installed; installing needs root. iproute2 and iptables make
# the network namespaces of the reliability scenarios.
set -euo pipefail

need=()
command -v buildah >/dev/null || need+=(buildah)
{ command -v promtool && command -v prometheus; } >/dev/null || need+=(prometheus)
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
command -v chromium >/dev/null || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "packages: missing ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "packages: installing ${need[*]} from Debian" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
  { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
