#!/usr/bin/env bash
# `make archive`: one archiver pass over the `make run` database.
set -euo pipefail
. "$(dirname "$0")/dev-env.sh"
cargo build --quiet --workspace --bins
exec "$bindir/strata-archiver" run --once "$@"
