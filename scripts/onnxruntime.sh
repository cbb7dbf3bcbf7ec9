#!/usr/bin/env bash
# Fetches ONNX Runtime's C library (MIT, by Microsoft) from the npm
# registry, where the pinned package onnxruntime-node carries it, into the
# per-user cache:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/sentiment-analyzer-pro/onnxruntime/libonnxruntime.so.1
# It is never committed. `npm pack` checks the tarball against the
# registry's integrity hash; the SHA-256 below pins the library's bytes.
# inference/onnxrt loads it at run time (no cgo) and asks for the C API
# version this release serves.
set -euo pipefail
. "$(dirname "$0")/npmfetch.sh"

package=onnxruntime-node
version=1.30.0
sha256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23 # of libonnxruntime.so.1

if [ "$(uname -sm)" != "Linux x86_64" ]; then
  echo "onnxruntime: the pinned library is for Linux x86-64; this is $(uname -sm)" >&2
  exit 1
fi
cache=${XDG_CACHE_HOME:-$HOME/.cache}/sentiment-analyzer-pro/onnxruntime
if [ ! -f "$cache/$version/libonnxruntime.so.1" ]; then
  echo "onnxruntime: fetching $package@$version (~110 MB; the library is 45 MB of it)" >&2
fi
npm_fetch "$package" "$version" sha256sum "$sha256" "$cache/$version" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
ln -sfn "$version/libonnxruntime.so.1" "$cache/libonnxruntime.so.1"
echo "$cache/libonnxruntime.so.1"
