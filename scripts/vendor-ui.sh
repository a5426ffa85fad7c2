#!/usr/bin/env bash
# `make ui-vendor`: refresh the dashboard's one third-party library, uPlot,
# from the npm registry at the pinned version (UPLOT_VERSION to change it).
# npm checks the tarball against the registry's integrity hash; the files
# kept are the minified IIFE build, its stylesheet and the MIT license.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${UPLOT_VERSION:-1.6.32}
dest=$here/../libs/strata-http/ui/vendor/uplot
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$version" >/dev/null)
tar -xzf "$tmp"/uplot-"$version".tgz -C "$tmp"
mkdir -p "$dest"
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$tmp/package/LICENSE" "$dest/"
integrity=$(npm view --silent "uplot@$version" dist.integrity)
printf 'uplot %s\n%s\n' "$version" "$integrity" > "$dest/VERSION"
echo "vendored uPlot $version into ${dest#"$here/../"}" >&2
