#!/usr/bin/env bash
# `make run`: a working Strata on this machine with no configuration.
# Without STRATA_DATABASE_URL, a private PostgreSQL lives in ./.strata/pg.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(pwd)
state=$root/.strata
mkdir -p "$state"

if [ -z "${STRATA_DATABASE_URL:-}" ]; then
  port=${STRATA_DEV_PG_PORT:-54329}
  start_private_pg "$state/pg" "$port"
  psql "postgres://postgres@127.0.0.1:$port/postgres" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'strata'" | grep -q 1 \
    || psql "postgres://postgres@127.0.0.1:$port/postgres" -qc "CREATE DATABASE strata"
  export STRATA_DATABASE_URL="postgres://postgres@127.0.0.1:$port/strata"
fi
export STRATA_COLD_URL=${STRATA_COLD_URL:-file://$state/cold}
mkdir -p "$state/cold"

cargo build --quiet -p strata-api
bin=${CARGO_TARGET_DIR:-$root/target}/debug/strata-api
"$bin" migrate

# One demo key, kept in .strata/demo.key while it stays valid.
key=$(cat "$state/demo.key" 2>/dev/null || true)
if [ -z "$key" ] || ! "$bin" keys list | awk -F'\t' -v p="${key:0:15}" '$3 == p && $6 == "" {found=1} END {exit !found}'; then
  key=$("$bin" keys create --project demo --scopes ingest,read,admin | tail -n 1)
  echo "$key" > "$state/demo.key"
fi
cat >&2 <<MSG

  Strata is starting on http://${STRATA_LISTEN:-127.0.0.1:8080}
  project: demo      key: $key
  (also in .strata/demo.key; cold tier: $STRATA_COLD_URL)

MSG
exec "$bin" serve
