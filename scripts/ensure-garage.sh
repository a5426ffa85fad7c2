#!/usr/bin/env bash
# Installs Garage (a real S3-compatible server, from crates.io) into the
# cache outside the clone, once per machine. Measured on 2 cores: ~15-25 min
# from scratch, nothing when cached.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cache=${STRATA_CACHE:-$HOME/.cache/strata}
version=${STRATA_GARAGE_VERSION:-2.5.0}
bin=$cache/tools/bin/garage
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$version"; then
  exit 0
fi
log "installing garage $version into $cache/tools (one-off, ~20 min on 2 cores)"
env -u CARGO_TARGET_DIR cargo install --locked --root "$cache/tools" \
  --target-dir "$cache/garage-build" --version "$version" \
  garage --no-default-features --features bundled-libs,sqlite >&2
rm -rf "$cache/garage-build"
