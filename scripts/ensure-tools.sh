#!/usr/bin/env bash
# Installs the tools `make test` needs into the cache (outside the clone),
# once per machine, and prints what the suite must export.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=${STRATA_CACHE:-$HOME/.cache/strata}/tools
if ! command -v cargo-nextest >/dev/null; then
  log "installing cargo-nextest into $root"
  cargo install --locked --root "$root" cargo-nextest >&2
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >&2 || true

