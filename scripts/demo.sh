#!/usr/bin/env bash
# `make demo`: load months of generated events into the `make run` database
# (project "demo") and archive what is past the hot retention, so that both
# tiers answer. Extra arguments go to `strata-api demo-data`.
set -euo pipefail
. "$(dirname "$0")/dev-env.sh"
cargo build --quiet --workspace --bins
"$bindir/strata-api" migrate
"$bindir/strata-api" demo-data "$@"
cat >&2 <<MSG

  Open the dashboard at http://${STRATA_LISTEN:-127.0.0.1:8080}/ui/ (while 'make run' serves)
  and paste the keys 'make run' printed (also in .strata/demo.key and .strata/operator.key).

MSG
