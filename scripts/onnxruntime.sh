#!/usr/bin/env bash
# Fetches ONNX Runtime's C library (MIT, by Microsoft) from the npm
# registry, where the pinned package onnxruntime-node carries it, into the
# per-user cache:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/sentiment-analyzer-pro/onnxruntime/libonnxruntime.so.1
# It is never committed. `npm pack` checks the tarball against the
# registry's integrity hash; the SHA-256 below pins the library's bytes.
# inference/onnxrt loads it at run time (no cgo) and needs the C API
# version this release has (docs/MODELS.md says why this one).
set -euo pipefail

package=onnxruntime-node
version=1.30.0
sha256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
lib=package/bin/napi-v6/linux/x64/libonnxruntime.so.1

cache=${XDG_CACHE_HOME:-$HOME/.cache}/sentiment-analyzer-pro/onnxruntime
dir="$cache/$version"
if [ "$(uname -sm)" != "Linux x86_64" ]; then
  echo "onnxruntime: the pinned library is for Linux x86-64; this is $(uname -sm)" >&2
  exit 1
fi
if [ ! -f "$dir/libonnxruntime.so.1" ]; then
  command -v npm >/dev/null || { echo "onnxruntime: npm is needed to fetch $package (apt-get install npm)" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "onnxruntime: fetching $package@$version (~110 MB; the library is 45 MB of it)" >&2
  (cd "$tmp" && npm pack --silent "$package@$version" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" "$lib"
  echo "$sha256  $tmp/$lib" | sha256sum -c --quiet - || { echo "onnxruntime: $lib does not match the pinned SHA-256" >&2; exit 1; }
  mkdir -p "$dir"
  mv "$tmp/$lib" "$dir/"
fi
ln -sfn "$version/libonnxruntime.so.1" "$cache/libonnxruntime.so.1"
echo "$cache/libonnxruntime.so.1"
