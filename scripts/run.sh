#!/usr/bin/env bash
# `make run`: a working Strata on this machine with no configuration.
set -euo pipefail
. "$(dirname "$0")/dev-env.sh"

cargo build --quiet --workspace --bins
bin=$bindir/strata-api
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
  (also in .strata/demo.key; cold tier: $STRATA_COLD_URL; archive with 'make archive')

MSG
exec "$bin" serve
