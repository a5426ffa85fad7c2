#!/usr/bin/env bash
# `make demo`: load months of generated events into the `make run` database
# (project "demo") and archive what is past the hot retention, so that both
# tiers answer. Extra arguments go to `strata-api demo-data`.
set -euo pipefail
. "$(dirname "$0")/dev-env.sh"
cargo build --quiet --workspace --bins
"$bindir/strata-api" migrate
exec "$bindir/strata-api" demo-data "$@"
